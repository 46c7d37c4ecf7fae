package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/web"
)

// runToken manages API tokens: `flowbox token create [--name N]`,
// `flowbox token list`, `flowbox token revoke NAME|ID`. The secret is
// printed once by create; only its hash is stored.
func runToken(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		return usageError{"usage: flowbox token create|list|revoke [flags]"}
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet(e, "token "+sub)
	load := commonFlags(fs)
	name := fs.String("name", "", "token `NAME` (create; default cli-<timestamp>)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	st, err := openStore(ctx, e, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "create":
		if fs.NArg() != 0 {
			return usageError{"usage: flowbox token create [--name NAME]"}
		}
		n := *name
		if n == "" {
			n = "cli-" + time.Now().UTC().Format("20060102T150405")
		}
		secret, t, err := web.NewToken(n, time.Now())
		if err != nil {
			return err
		}
		if _, err := st.CreateToken(ctx, t); err != nil {
			return fmt.Errorf("cannot create token %q: %w", n, err)
		}
		fmt.Fprintln(e.stdout, secret)
		fmt.Fprintf(e.stderr, "token %q created; it is shown only now. Use it as: Authorization: Bearer <token>\n", n)
		return nil
	case "list":
		ts, err := st.Tokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tCREATED\tLAST USED")
		for _, t := range ts {
			used := "never"
			if !t.LastUsed.IsZero() {
				used = t.LastUsed.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s…\t%s\t%s\n", t.ID, t.Name, t.Prefix, t.CreatedAt.Format(time.RFC3339), used)
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return usageError{"usage: flowbox token revoke NAME|ID"}
		}
		ts, err := st.Tokens(ctx)
		if err != nil {
			return err
		}
		arg := fs.Arg(0)
		for _, t := range ts {
			if t.Name == arg || strconv.FormatInt(t.ID, 10) == arg {
				if err := st.DeleteToken(ctx, t.ID); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "token %q revoked\n", t.Name)
				return nil
			}
		}
		return fmt.Errorf("cannot revoke token %q: %w", arg, store.ErrNotFound)
	}
	return usageError{fmt.Sprintf("unknown token command %q (create, list, revoke)", sub)}
}
