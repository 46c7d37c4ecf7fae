package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Change is one line of a plan: a property that differs from what flowbox
// wants, or an entry to add or remove.
type Change struct {
	// Step is the step that owns the change ("target", "traffic-flow").
	Step string
	// Property is the property path, e.g. "traffic-flow/enabled" or
	// "target/version"; "target" for the whole entry.
	Property string
	// Current and New are the values as RouterOS prints them; "(none)"
	// when the entry does not exist.
	Current, New string

	key string // RouterOS property name
	id  string // .id of the entry the change applies to
	op  string // "add", "set" or "remove"
}

// String renders the change as "property: current -> new".
func (c Change) String() string {
	cur := c.Current
	if cur == "" {
		cur = `""`
	}
	return fmt.Sprintf("%s: %s -> %s", c.Property, cur, c.New)
}

// Step is one converging unit of provisioning (akvorado's migration steps):
// Check reads the router and returns the changes still needed (none means
// "already in place", a counted skip), Apply makes them, and the runner
// checks again so that a step that did not converge is an error.
type Step struct {
	Name  string
	Check func(ctx context.Context, s *session) ([]Change, error)
	Apply func(ctx context.Context, s *session, changes []Change) error
	// Undo restores what flowbox changed, from the recorded previous
	// values, and returns what it did.
	Undo func(ctx context.Context, s *session) ([]Change, error)
}

// plan runs every Check and returns the changes, without applying them.
func (p *Provisioner) planSteps(ctx context.Context, s *session, steps []Step) ([]Change, error) {
	var all []Change
	for _, st := range steps {
		changes, err := st.Check(ctx, s)
		if err != nil {
			return nil, checkError(st.Name, err)
		}
		all = append(all, changes...)
	}
	return all, nil
}

// applySteps converges every step: check, apply, re-check. It returns the
// changes made and the number of steps already in place.
func (p *Provisioner) applySteps(ctx context.Context, s *session, steps []Step) ([]Change, int, error) {
	var (
		done    []Change
		skipped int
	)
	for _, st := range steps {
		changes, err := st.Check(ctx, s)
		if err != nil {
			p.metrics.steps.WithLabelValues(st.Name, "failed").Inc()
			return done, skipped, checkError(st.Name, err)
		}
		if len(changes) == 0 {
			skipped++
			p.metrics.steps.WithLabelValues(st.Name, "skipped").Inc()
			continue
		}
		if err := st.Apply(ctx, s, changes); err != nil {
			p.metrics.steps.WithLabelValues(st.Name, "failed").Inc()
			if errors.As(err, new(*ExporterConflictError)) {
				return done, skipped, err
			}
			return done, skipped, fmt.Errorf("cannot apply %s: %w", st.Name, err)
		}
		again, err := st.Check(ctx, s)
		if err != nil {
			p.metrics.steps.WithLabelValues(st.Name, "failed").Inc()
			return done, skipped, fmt.Errorf("cannot re-check %s: %w", st.Name, err)
		}
		if len(again) > 0 {
			p.metrics.steps.WithLabelValues(st.Name, "failed").Inc()
			return done, skipped, fmt.Errorf("%s did not converge, still: %s", st.Name, joinChanges(again))
		}
		p.metrics.steps.WithLabelValues(st.Name, "applied").Inc()
		done = append(done, changes...)
	}
	return done, skipped, nil
}

// checkError wraps an error of a step's Check; an *ExporterConflictError
// is a refusal that explains itself and is returned as is.
func checkError(step string, err error) error {
	if errors.As(err, new(*ExporterConflictError)) {
		return err
	}
	return fmt.Errorf("cannot check %s: %w", step, err)
}

// undoSteps runs every step's Undo, in reverse order of application.
func (p *Provisioner) undoSteps(ctx context.Context, s *session, steps []Step) ([]Change, error) {
	var done []Change
	for i := len(steps) - 1; i >= 0; i-- {
		changes, err := steps[i].Undo(ctx, s)
		done = append(done, changes...)
		if err != nil {
			return done, fmt.Errorf("cannot undo %s: %w", steps[i].Name, err)
		}
	}
	return done, nil
}

func joinChanges(cs []Change) string {
	lines := make([]string, len(cs))
	for i, c := range cs {
		lines[i] = c.String()
	}
	return strings.Join(lines, "; ")
}
