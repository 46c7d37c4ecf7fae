package main

import (
	"context"
	"errors"
)

// runServe is wired up once the components exist (integration step).
func runServe(ctx context.Context, e *env, args []string) error {
	return errors.New("serve: not wired yet")
}

func runCheck(ctx context.Context, e *env, args []string) error {
	return errors.New("check: not wired yet")
}

func runDecode(ctx context.Context, e *env, args []string) error {
	return errors.New("decode: not wired yet")
}
