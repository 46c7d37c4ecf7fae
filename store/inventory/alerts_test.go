package inventory

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// TestAlertLifecycle opens, updates, acknowledges, ends, lists and prunes
// alerts, with their mitigation and notification logs.
func TestAlertLifecycle(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	t0 := time.Date(2026, 3, 3, 14, 2, 11, 0, time.UTC)
	a := store.Alert{Kind: store.AlertUDPAmplification, Severity: store.SeverityCritical, RouterID: 1, Router: "wisp-1",
		Target: "100.64.1.23", Subscriber: "Maria Garcia", Direction: "in", Started: t0, Updated: t0,
		PeakBps: 7e8, PeakAt: t0, Summary: "700 Mbit/s", Evidence: store.AlertEvidence{
			TopSources: []store.AlertTop{{Key: "198.51.100.7", Bytes: 10, Packets: 1, Flows: 1}},
			Measures:   map[string]float64{"baseline_bps": 1e6}}}
	if err := s.OpenAlert(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 {
		t.Fatal("OpenAlert set no id")
	}
	b := a
	b.ID = 0
	b.Kind, b.Target, b.Direction, b.Started = store.AlertPortScan, "100.64.1.99", "out", t0.Add(time.Minute)
	if err := s.OpenAlert(ctx, &b); err != nil {
		t.Fatal(err)
	}
	end := t0.Add(5 * time.Minute)
	a.Ended, a.Updated, a.PeakBps = &end, end, 9e8
	if err := s.UpdateAlert(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if err := s.AckAlert(ctx, a.ID, "admin", end); err != nil {
		t.Fatal(err)
	}
	if err := s.AckAlert(ctx, a.ID, "other", end.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.AckAlert(ctx, 999, "admin", end); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AckAlert(unknown) = %v, want ErrNotFound", err)
	}
	got, err := s.GetAlert(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.PeakBps != 9e8 || got.Ended == nil || !got.Ended.Equal(end) || got.AckedBy != "admin" ||
		got.Evidence.TopSources[0].Key != "198.51.100.7" || got.Evidence.Measures["baseline_bps"] != 1e6 || got.Subscriber != "Maria Garcia" {
		t.Fatalf("GetAlert = %+v", got)
	}
	active, err := s.ListAlerts(ctx, store.AlertFilter{Active: true})
	if err != nil || len(active) != 1 || active[0].ID != b.ID {
		t.Fatalf("active alerts = %+v, %v; want only %d", active, err, b.ID)
	}
	all, err := s.ListAlerts(ctx, store.AlertFilter{Router: "wisp-1"})
	if err != nil || len(all) != 2 || all[0].ID != b.ID {
		t.Fatalf("all alerts = %d, %v; want 2, newest first", len(all), err)
	}
	if err := s.AddMitigationAction(ctx, &store.MitigationAction{At: end, AlertID: a.ID, Router: "wisp-1", Action: "add",
		Kind: "address-list", List: "flowbox-blackhole", Address: "100.64.1.23", Timeout: time.Hour, Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddNotificationAttempt(ctx, &store.NotificationAttempt{At: end, AlertID: a.ID, Channel: "ops", Event: "opened", Attempt: 1, OK: true}); err != nil {
		t.Fatal(err)
	}
	if ms, err := s.MitigationActions(ctx, a.ID, 0); err != nil || len(ms) != 1 || ms[0].Timeout != time.Hour {
		t.Fatalf("mitigation actions = %+v, %v", ms, err)
	}
	n, err := s.EndActiveAlerts(ctx, end)
	if err != nil || n != 1 {
		t.Fatalf("EndActiveAlerts = %d, %v; want 1", n, err)
	}
	if n, err := s.PruneAlerts(ctx, end.Add(time.Millisecond)); err != nil || n != 2 {
		t.Fatalf("PruneAlerts = %d, %v; want 2", n, err)
	}
	if ms, _ := s.MitigationActions(ctx, 0, 0); len(ms) != 0 {
		t.Fatalf("mitigation log of pruned alerts kept: %+v", ms)
	}
	if ns, _ := s.NotificationAttempts(ctx, 0, 0); len(ns) != 0 {
		t.Fatalf("notification log of pruned alerts kept: %+v", ns)
	}
}

// TestSubscriberOn: two routers' overlapping CGNAT pools name one inside
// address for two customers; each router's lookup finds its own, an
// imported record serves every router, and another router's record
// answers when the router has none.
func TestSubscriberOn(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	t0 := time.Date(2026, 3, 3, 14, 0, 0, 0, time.UTC)
	p := netip.MustParsePrefix("100.64.0.47/32")
	if _, err := s.ApplySubscriberChanges(ctx, nil, []store.Subscriber{
		{RouterID: 1, Prefix: p, Name: "Ana", Source: store.SourceDHCP, ValidFrom: t0},
		{RouterID: 2, Prefix: p, Name: "Bruno", Source: store.SourceDHCP, ValidFrom: t0},
		{RouterID: 2, Prefix: netip.MustParsePrefix("100.64.9.9/32"), Name: "Carla", Source: store.SourceDHCP, ValidFrom: t0},
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		router int64
		addr   string
		want   string
	}{{1, "100.64.0.47", "Ana"}, {2, "100.64.0.47", "Bruno"}, {1, "100.64.9.9", "Carla"}} {
		got, err := s.SubscriberOn(ctx, tc.router, netip.MustParseAddr(tc.addr), t0.Add(time.Hour))
		if err != nil || got.Name != tc.want {
			t.Errorf("SubscriberOn(%d, %s) = %q, %v; want %q", tc.router, tc.addr, got.Name, err, tc.want)
		}
	}
	if _, err := s.SubscriberOn(ctx, 1, netip.MustParseAddr("100.64.0.47"), t0.Add(-time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("before any record: %v, want ErrNotFound", err)
	}
}
