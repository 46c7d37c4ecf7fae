package provision

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/store"
)

// maxTranscriptLines bounds the transcript saved with one history entry;
// the oldest lines are dropped first and counted.
const maxTranscriptLines = 400

// recorder collects what one operation did, for the history.
type recorder struct {
	p          *Provisioner
	action     string
	r          *store.Router
	start      time.Time
	summary    string
	changes    []string
	transcript []string
	dropped    int
}

func (p *Provisioner) newRecorder(action string, r *store.Router) *recorder {
	return &recorder{p: p, action: action, r: r, start: time.Now()}
}

// addConn appends a session's transcript (already redacted by
// routeros.Conn).
func (rec *recorder) addConn(c *routeros.Conn) {
	lines, dropped := c.Transcript()
	rec.dropped += dropped
	if len(rec.transcript) > 0 {
		rec.transcript = append(rec.transcript, "-- new session --")
	}
	for _, l := range lines {
		rec.transcript = append(rec.transcript, rec.redact(l))
	}
	if over := len(rec.transcript) - maxTranscriptLines; over > 0 {
		rec.transcript = rec.transcript[over:]
		rec.dropped += over
	}
}

// redact removes the router's password from any text, in case a router
// echoed it; routeros.Conn already hides =password= words.
func (rec *recorder) redact(s string) string {
	if rec.r != nil && len(rec.r.Password) >= 3 {
		s = strings.ReplaceAll(s, rec.r.Password, "***")
	}
	return s
}

// saveRun appends the operation to the router's history. Failing to save
// history does not fail the operation: it is logged and counted.
func (p *Provisioner) saveRun(ctx context.Context, rec *recorder, opErr error) {
	if rec.r == nil || rec.r.ID == 0 {
		return
	}
	if rec.dropped > 0 {
		p.metrics.transcriptDropped.Add(float64(rec.dropped))
		rec.transcript = append([]string{fmt.Sprintf("(%d earlier lines dropped)", rec.dropped)}, rec.transcript...)
	}
	run := &store.ProvisionRun{
		RouterID:   rec.r.ID,
		Time:       rec.start,
		Action:     rec.action,
		OK:         opErr == nil,
		Summary:    rec.summary,
		Changes:    rec.changes,
		Transcript: rec.transcript,
	}
	if opErr != nil {
		run.Error = rec.redact(opErr.Error())
		if run.Summary == "" {
			run.Summary = rec.action + " failed"
		}
	}
	// Save even when the caller's context is cancelled: the history of a
	// failed operation matters most.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := p.store.AddProvisionRun(sctx, run); err != nil {
		p.metrics.historyErrors.Inc()
		p.logger.Error("cannot save provisioning history", "router", rec.r.Name, "action", rec.action, "error", err)
	}
}

// History returns the last limit entries of a router's provisioning
// history, newest first.
func (p *Provisioner) History(ctx context.Context, name string, limit int) ([]store.ProvisionRun, error) {
	r, err := p.store.GetRouter(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("cannot load router %s: %w", name, err)
	}
	runs, err := p.store.ProvisionRuns(ctx, r.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("cannot read history of router %s: %w", name, err)
	}
	return runs, nil
}
