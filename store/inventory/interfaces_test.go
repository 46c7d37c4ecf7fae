package inventory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

func TestInterfaceNames(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ids, err := s.ApplyInterfaceChanges(ctx, nil, []store.InterfaceName{
		{RouterID: 1, Index: 8388611, Name: "<pppoe-alice>"}, // first name: no start
		{RouterID: 1, Index: 2, Name: "ether2", ValidFrom: t0},
		{RouterID: 2, Index: 8388611, Name: "<pppoe-carol>", ValidFrom: t0},
	})
	if err != nil || len(ids) != 3 {
		t.Fatalf("insert: %v, %v", ids, err)
	}
	// alice's session ends; bob gets her ifIndex.
	if _, err := s.ApplyInterfaceChanges(ctx, []store.InterfaceEnd{{ID: ids[0], At: t0.Add(10 * time.Minute)}},
		[]store.InterfaceName{{RouterID: 1, Index: 8388611, Name: "<pppoe-bob>", ValidFrom: t0.Add(10 * time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	// Ending twice leaves the first end.
	if _, err := s.ApplyInterfaceChanges(ctx, []store.InterfaceEnd{{ID: ids[0], At: t0.Add(time.Hour)}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		router int64
		index  uint32
		at     time.Duration
		want   string
	}{
		{1, 8388611, -time.Hour, "<pppoe-alice>"}, {1, 8388611, 9 * time.Minute, "<pppoe-alice>"},
		{1, 8388611, 10 * time.Minute, "<pppoe-bob>"}, {2, 8388611, time.Minute, "<pppoe-carol>"},
		{2, 8388611, -time.Minute, ""}, {1, 2, time.Minute, "ether2"}, {1, 3, time.Minute, ""},
	} {
		got, err := s.InterfaceNameAt(ctx, tc.router, tc.index, t0.Add(tc.at))
		if tc.want == "" {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("router %d ifIndex %d at %v: %q, %v; want ErrNotFound", tc.router, tc.index, tc.at, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("router %d ifIndex %d at %v: %q, %v; want %q", tc.router, tc.index, tc.at, got, err, tc.want)
		}
	}
	hist, err := s.InterfaceHistory(ctx, t0.Add(time.Minute))
	if err != nil || len(hist) != 4 {
		t.Fatalf("history: %+v, %v", hist, err)
	}
	alice := hist[1] // router 1, ifIndex 8388611, the earliest
	if alice.Name != "<pppoe-alice>" || !alice.ValidFrom.IsZero() || !alice.ValidTo.Equal(t0.Add(10*time.Minute)) {
		t.Errorf("alice's record %+v", alice)
	}
	if hist, _ := s.InterfaceHistory(ctx, t0.Add(11*time.Minute)); len(hist) != 3 {
		t.Errorf("history since the end of alice's session: %+v", hist)
	}
	if n, err := s.PruneInterfaceHistory(ctx, t0.Add(11*time.Minute)); err != nil || n != 1 {
		t.Errorf("prune: %d, %v", n, err)
	}
	if _, err := s.ApplyInterfaceChanges(ctx, nil, []store.InterfaceName{{RouterID: 1, Index: 4}}); err == nil {
		t.Error("empty name saved")
	}
}
