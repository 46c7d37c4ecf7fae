package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/web"
)

// runToken manages API tokens: `flowbox token create [--user N] [--name T]
// [--role R] [--expires DUR] [--json]`, `flowbox token list [--json]`,
// `flowbox token revoke NAME|ID`. Every token belongs to a user (by
// default the oldest admin) and has a role, at most its owner's (by
// default the owner's). The secret is printed once by create; only its
// hash is stored. It works while serve runs.
func runToken(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		return usageError{"usage: flowbox token create|list|revoke [flags]"}
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "create", "list", "revoke":
	default:
		return usageError{fmt.Sprintf("unknown token command %q (create, list, revoke)", sub)}
	}
	fs := newFlagSet(e, "token "+sub)
	load := commonFlags(fs)
	name := fs.String("name", "", "token `NAME` (create; default cli-<timestamp>)")
	user := fs.String("user", "", "owner `USER` (create; default the oldest admin)")
	roleFlag := fs.String("role", "", "`ROLE` of the token: admin, operator or viewer, at most the owner's (create; default the owner's)")
	expires := fs.String("expires", "", "lifetime `DUR` such as 720h or 90d (create; default never)")
	asJSON := fs.Bool("json", false, "print JSON: create prints an object with the secret under \"token\"; list an array")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var role store.Role
	var lifetime time.Duration
	if sub == "create" {
		if fs.NArg() != 0 {
			return usageError{"usage: flowbox token create [--user USER] [--name NAME] [--role ROLE] [--expires DUR] [--json]"}
		}
		if *roleFlag != "" {
			r, err := store.ParseRole(*roleFlag)
			if err != nil {
				return usageError{"--role: " + err.Error()}
			}
			role = r
		}
		if *expires != "" {
			d, err := web.ParseExpiry(*expires)
			if err != nil {
				return usageError{"--expires: " + err.Error()}
			}
			lifetime = d
		}
	}
	if sub == "revoke" && fs.NArg() != 1 {
		return usageError{"usage: flowbox token revoke NAME|ID"}
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
	now := time.Now()
	switch sub {
	case "create":
		owner, err := tokenOwner(ctx, st, *user)
		if err != nil {
			return err
		}
		if role == "" {
			role = owner.Role
		}
		if !owner.Role.AtLeast(role) {
			return fmt.Errorf("--role: %s is more than the owner %s's role (%s)", role, owner.Name, owner.Role)
		}
		n := *name
		if n == "" {
			n = "cli-" + now.UTC().Format("20060102T150405")
		}
		secret, t, err := web.NewToken(n, now)
		if err != nil {
			return err
		}
		t.UserID, t.Role = owner.ID, role
		if lifetime > 0 {
			t.ExpiresAt = now.Add(lifetime)
		}
		if t, err = st.CreateToken(ctx, t); err != nil {
			return fmt.Errorf("cannot create token %q: %w", n, err)
		}
		t.Owner, t.OwnerRole = owner.Name, owner.Role
		detail := "role " + string(role)
		if !t.ExpiresAt.IsZero() {
			detail += ", expires " + t.ExpiresAt.UTC().Format(time.RFC3339)
		}
		auditCLI(ctx, e, st, "token.create", "token "+n+" of "+owner.Name, detail)
		if *asJSON {
			v := web.TokenViewOf(t, now)
			v.Token = secret
			return json.NewEncoder(e.stdout).Encode(v)
		}
		fmt.Fprintln(e.stdout, secret)
		fmt.Fprintf(e.stderr, "token %q of %s (%s) created; it is shown only now. Use it as: Authorization: Bearer <token>\n", n, owner.Name, role)
		return nil
	case "list":
		ts, err := st.Tokens(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			out := make([]web.TokenView, 0, len(ts))
			for _, t := range ts {
				out = append(out, web.TokenViewOf(t, now))
			}
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tOWNER\tROLE\tPREFIX\tCREATED\tEXPIRES\tLAST USED")
		for _, t := range ts {
			used, exp, owner := "never", "never", t.Owner
			if !t.LastUsed.IsZero() {
				used = t.LastUsed.UTC().Format(time.RFC3339)
			}
			if !t.ExpiresAt.IsZero() {
				exp = t.ExpiresAt.UTC().Format(time.RFC3339)
				if !now.Before(t.ExpiresAt) {
					exp += " (expired)"
				}
			}
			if owner == "" {
				owner = "(none: refused)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s…\t%s\t%s\t%s\n", t.ID, t.Name, owner, t.Role, t.Prefix,
				t.CreatedAt.UTC().Format(time.RFC3339), exp, used)
		}
		return tw.Flush()
	default: // revoke
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
				auditCLI(ctx, e, st, "token.revoke", "token "+t.Name+" of "+t.Owner, "")
				fmt.Fprintf(e.stderr, "token %q revoked\n", t.Name)
				return nil
			}
		}
		return fmt.Errorf("cannot revoke token %q: %w", arg, store.ErrNotFound)
	}
}

// tokenOwner returns the user called name, or the oldest admin when name
// is empty.
func tokenOwner(ctx context.Context, st store.Accounts, name string) (store.User, error) {
	if name != "" {
		u, err := st.UserByName(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return store.User{}, fmt.Errorf("--user: no user %q (flowbox user list shows them)", name)
		}
		return u, err
	}
	users, err := st.Users(ctx)
	if err != nil {
		return store.User{}, err
	}
	var oldest *store.User
	for i, u := range users {
		if u.Role == store.RoleAdmin && (oldest == nil || u.ID < oldest.ID) {
			oldest = &users[i]
		}
	}
	if oldest == nil {
		return store.User{}, errors.New("a token belongs to a user, and there is no admin yet: " +
			"flowbox user add --name NAME --role admin --password-file FILE, then --user NAME")
	}
	return *oldest, nil
}
