package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/web"
)

// cliActor and cliClient name the local commands in the audit log.
const (
	cliActor  = "cli"
	cliClient = "local"
)

// auditCLI writes a change made by a local command to the audit log; a
// failure is reported on stderr (the change is done).
func auditCLI(ctx context.Context, e *env, st store.Accounts, action, target, detail string) {
	err := st.AddAudit(ctx, store.AuditEntry{At: time.Now(), Actor: cliActor, Action: action, Target: target, Detail: detail,
		Client: cliClient, OK: true})
	if err != nil {
		fmt.Fprintf(e.stderr, "warning: cannot write the audit log: %v\n", err)
	}
}

// readPasswordFile reads a console password from a file ("-": stdin),
// without its trailing newline.
func readPasswordFile(e *env, path string) (string, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(e.stdin, 4096))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("cannot read the password file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// runUser manages console users: `flowbox user add --name N --role R
// --password-file F`, `user list [--json]`, `user remove --name N`,
// `user set-role --name N --role R`. It works while serve runs: a removed
// user's sessions and tokens stop working at once, and a new role applies
// at the next request.
func runUser(ctx context.Context, e *env, args []string) error {
	const usage = "usage: flowbox user add|list|remove|set-role [flags]"
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		return usageError{usage}
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "add", "list", "remove", "set-role":
	default:
		return usageError{fmt.Sprintf("unknown user command %q (add, list, remove, set-role)", sub)}
	}
	fs := newFlagSet(e, "user "+sub)
	load := commonFlags(fs)
	name := fs.String("name", "", "user `NAME`")
	roleFlag := fs.String("role", "", "`ROLE`: admin, operator or viewer")
	pwFile := fs.String("password-file", "", "`FILE` holding the password (- for stdin; at least 8 characters)")
	asJSON := fs.Bool("json", false, "print JSON (list)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{usage}
	}
	needName := func() error {
		if *name == "" {
			return usageError{"flowbox user " + sub + ": --name is required"}
		}
		return nil
	}
	needRole := func() (store.Role, error) {
		if *roleFlag == "" {
			return "", usageError{"flowbox user " + sub + ": --role is required (admin, operator or viewer)"}
		}
		r, err := store.ParseRole(*roleFlag)
		if err != nil {
			return "", usageError{"--role: " + err.Error()}
		}
		return r, nil
	}
	var role store.Role
	var password string
	switch sub {
	case "add":
		if err := needName(); err != nil {
			return err
		}
		var err error
		if role, err = needRole(); err != nil {
			return err
		}
		if *pwFile == "" {
			return usageError{"flowbox user add: --password-file is required"}
		}
		if password, err = readPasswordFile(e, *pwFile); err != nil {
			return err
		}
	case "remove":
		if err := needName(); err != nil {
			return err
		}
	case "set-role":
		if err := needName(); err != nil {
			return err
		}
		var err error
		if role, err = needRole(); err != nil {
			return err
		}
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
	case "add":
		hash, err := web.HashPassword(password)
		if err != nil {
			return fmt.Errorf("--password-file: %w", err)
		}
		if _, err := st.CreateUser(ctx, *name, hash, role); err != nil {
			return fmt.Errorf("cannot add user %q: %w", *name, err)
		}
		auditCLI(ctx, e, st, "user.add", "user "+*name, "role "+string(role))
		fmt.Fprintf(e.stderr, "user %q added as %s\n", *name, role)
	case "list":
		users, err := st.Users(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			out := make([]web.UserView, 0, len(users))
			for _, u := range users {
				out = append(out, web.UserView{Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt.UTC()})
			}
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tCREATED")
		for _, u := range users {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.Role, u.CreatedAt.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	case "remove":
		if err := st.DeleteUser(ctx, *name); err != nil {
			if errors.Is(err, store.ErrLastAdmin) {
				return fmt.Errorf("cannot remove user %q: it is the last admin (make another admin first)", *name)
			}
			return fmt.Errorf("cannot remove user %q: %w", *name, err)
		}
		auditCLI(ctx, e, st, "user.remove", "user "+*name, "sessions ended, API tokens revoked")
		fmt.Fprintf(e.stderr, "user %q removed with its sessions and API tokens\n", *name)
	case "set-role":
		if err := st.SetRole(ctx, *name, role); err != nil {
			if errors.Is(err, store.ErrLastAdmin) {
				return fmt.Errorf("cannot change the role of %q: it is the last admin (make another admin first)", *name)
			}
			return fmt.Errorf("cannot change the role of %q: %w", *name, err)
		}
		auditCLI(ctx, e, st, "user.role", "user "+*name, "role "+string(role))
		fmt.Fprintf(e.stderr, "user %q is now %s\n", *name, role)
	}
	return nil
}
