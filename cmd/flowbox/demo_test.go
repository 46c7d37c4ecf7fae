package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
)

// TestDemo runs `flowbox demo` as the README's first command does: three
// simulated routers (one v6, two v7) onboarded through the normal
// provisioning path. It waits until the fleet page's API shows all three
// online, the store holds flows from each, `flowbox stats` (another reader
// of the same data directory) sees them, and the top talkers carry
// subscriber names learned from the routers.
//
// The simulated traffic follows a daily curve, so each case sets the
// simulator's clock (--sim-start, --sim-tz) instead of reading the time of
// day the test runs at: night, evening peak and a run across midnight, in
// the test's time zone and in another. Flows keep real timestamps. The
// first case also stops the demo and runs it again on the same data
// directory; the others run in parallel, each on its own ports and data
// directory.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo runs for about a minute")
	}
	sp, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatalf("no time zone data (time/tzdata is embedded): %v", err)
	}
	day := func(loc *time.Location, h, m, s int) time.Time { return time.Date(2026, 3, 14, h, m, s, 0, loc) }
	type demoCase struct {
		name string
		at   time.Time
		full bool // also stop and run again on the same data directory
		args []string
		// stdout, stderr and stop are the running demo's.
		stdout, stderr *testutil.SyncBuffer
		stop           func() error
	}
	cases := []*demoCase{
		{name: "peak-local", at: day(time.Local, 20, 0, 0), full: true},
		{name: "night-local", at: day(time.Local, 3, 0, 0)},
		{name: "midnight-local", at: day(time.Local, 23, 59, 30)},
		{name: "peak-sao-paulo", at: day(sp, 20, 0, 0)},
		{name: "night-sao-paulo", at: day(sp, 3, 0, 0)},
		{name: "midnight-sao-paulo", at: day(sp, 23, 59, 30)},
	}
	// Every demo starts now: each one waits about a minute for its first
	// rollups, so they wait together (go test runs only GOMAXPROCS
	// parallel subtests at a time).
	for _, c := range cases {
		c.args = []string{"demo", "--data-dir", t.TempDir(),
			"--listen-web", "127.0.0.1:" + strconv.Itoa(freePort(t, "tcp")),
			"--listen-netflow", "127.0.0.1:" + strconv.Itoa(freePort(t, "udp")),
			"--api-port-base", "0", "--rate", "400",
			"--sim-start", c.at.Format(time.RFC3339), "--sim-tz", c.at.Location().String()}
		c.stdout, c.stderr, c.stop = startCommand(t, c.args...)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			password := checkDemo(t, c.args, c.at, c.stdout, c.stderr)
			if !c.full {
				return
			}
			if err := c.stop(); err != nil {
				t.Fatalf("demo did not stop cleanly: %v\n%s", err, c.stderr.String())
			}

			// A second run on the same data directory finds the routers,
			// applies again and verifies with new flows (not the previous
			// run's).
			stdout2, stderr2, _ := startCommand(t, c.args...)
			testutil.WaitFor(t, 90*time.Second, "the second demo run to print its login", func() (bool, string) {
				m := demoLoginLine.FindStringSubmatch(stdout2.String())
				return m != nil && m[1] == password, stdout2.String() + stderr2.String()
			})
			if n := strings.Count(stdout2.String(), "flows arriving from 127.0.0."); n != 3 {
				t.Errorf("second run verified %d routers with fresh flows, want 3:\n%s", n, stdout2.String())
			}
		})
	}
}

// demoLoginLine is the demo's line with the console login.
var demoLoginLine = regexp.MustCompile(`login:\s+admin / (\S+)`)

// flagValue returns the value following name in args.
func flagValue(args []string, name string) string {
	for i := range len(args) - 1 {
		if args[i] == name {
			return args[i+1]
		}
	}
	return ""
}

// checkDemo checks a running `flowbox demo` started with args, whose
// simulated clock started at at: the routers are onboarded and online,
// their flows are stored, searchable and seen by `flowbox stats`, every
// flow has a direction and customer flows a subscriber name, and the top
// talkers and usage report name subscribers. It returns the console
// password.
func checkDemo(t *testing.T, args []string, at time.Time, stdout, stderr *testutil.SyncBuffer) string {
	t.Helper()
	dataDir, webAddr := flagValue(args, "--data-dir"), flagValue(args, "--listen-web")
	var password string
	testutil.WaitFor(t, 90*time.Second, "the demo to print its login", func() (bool, string) {
		m := demoLoginLine.FindStringSubmatch(stdout.String())
		if m == nil {
			return false, stdout.String() + stderr.String()
		}
		password = m[1]
		return true, ""
	})
	out := stdout.String()
	for _, want := range []string{"RouterOS 6.", "RouterOS 7.", "flows arriving from", "web console: http://" + webAddr + "/"} {
		if !bytes.Contains([]byte(out), []byte(want)) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	// The daily curve runs on the simulated clock, not on the test's.
	if want := "start=" + at.Format(time.RFC3339) + " tz=" + at.Location().String(); !strings.Contains(stderr.String(), want) {
		t.Errorf("the demo does not log its simulated clock (%s):\n%s", want, stderr.String())
	}

	c := login(t, "http://"+webAddr, "admin", password)
	var routers []apiRouter
	testutil.WaitFor(t, 60*time.Second, "three online routers", func() (bool, string) {
		routers = nil
		c.get("/api/v1/routers", &routers)
		online := 0
		for _, r := range routers {
			if r.Status == "online" && r.State == "configured" {
				online++
			}
		}
		return len(routers) == 3 && online == 3, fmt.Sprintf("%+v", routers)
	})
	majors := map[byte]int{}
	for _, r := range routers {
		majors[r.Version[0]]++
		var page struct {
			Flows []struct {
				RouterID int64 `json:"router_id"`
			} `json:"flows"`
		}
		if code := c.get(fmt.Sprintf("/api/v1/flows?router=%d&range=1h&limit=5", r.ID), &page); code != 200 || len(page.Flows) == 0 {
			t.Errorf("router %s: flow search answered %d with %d flows", r.Name, code, len(page.Flows))
		}
		for _, f := range page.Flows {
			if f.RouterID != r.ID {
				t.Errorf("router %s: flow search returned a flow of router %d", r.Name, f.RouterID)
			}
		}
	}
	if majors['6'] != 1 || majors['7'] != 2 {
		t.Errorf("fleet versions: %v, want one v6 and two v7", majors)
	}

	// flowbox stats reads the same data directory while the demo runs.
	var statsOut testutil.SyncBuffer
	e := &env{stdout: &statsOut, stderr: &testutil.SyncBuffer{}, getenv: func(string) string { return "" }}
	testutil.WaitFor(t, 30*time.Second, "flowbox stats to list the three routers", func() (bool, string) {
		statsOut = testutil.SyncBuffer{}
		if err := run(context.Background(), e, []string{"stats", "--json", "--data-dir", dataDir}); err != nil {
			return false, err.Error()
		}
		var rows []struct {
			Router      string `json:"router"`
			FlowsStored uint64 `json:"flows_stored"`
		}
		if err := json.Unmarshal([]byte(statsOut.String()), &rows); err != nil {
			return false, err.Error()
		}
		stored := map[string]bool{}
		for _, r := range rows {
			if r.FlowsStored > 0 && r.Router != "" {
				stored[r.Router] = true
			}
		}
		return len(stored) == 3, statsOut.String()
	})

	// Rollups are written once a minute: wait for the top talkers.
	for _, r := range routers {
		testutil.WaitFor(t, 100*time.Second, "top talkers with subscriber names on "+r.Name, func() (bool, string) {
			var top apiTop
			c.get(fmt.Sprintf("/api/v1/top/local?router=%d&range=1h&limit=10", r.ID), &top)
			named := 0
			for _, row := range top.Rows {
				if row.Name != "" && row.Bytes > 0 {
					named++
				}
			}
			return named >= 3, fmt.Sprintf("%+v", top)
		})
	}
	// Every flow has a direction, IPv4 and IPv6 alike: the subscribers,
	// addresses, pools and DHCPv6 bindings were learned from each router
	// before its first flows, and IPv6 customers carry their names. The
	// newest flows are a sample of a second or two, which may hold no
	// IPv6 flow: the router's IPv6 flows (the model's 2001:db8::/32) are
	// searched too.
	for _, r := range routers {
		var page, page6 struct {
			Flows []struct {
				Src, Dst, Direction, Subscriber string
			} `json:"flows"`
		}
		if code := c.get(fmt.Sprintf("/api/v1/flows?router=%d&range=1h&limit=1000", r.ID), &page); code != 200 {
			t.Fatalf("router %s: flow search answered %d", r.Name, code)
		}
		if code := c.get(fmt.Sprintf("/api/v1/flows?router=%d&range=1h&limit=1000&host=2001:db8::/32", r.ID), &page6); code != 200 {
			t.Fatalf("router %s: IPv6 flow search answered %d", r.Name, code)
		}
		var v6, unnamed int
		dirs := map[string]int{}
		for _, f := range append(page.Flows, page6.Flows...) {
			dirs[f.Direction]++
			if strings.Contains(f.Src, ":") {
				v6++
			}
			if (f.Direction == "download" || f.Direction == "upload") && f.Subscriber == "" {
				if unnamed++; unnamed <= 3 {
					t.Logf("router %s: customer flow without a name: %+v", r.Name, f)
				}
			}
		}
		t.Logf("router %s: %d flows, %d IPv6, directions %v", r.Name, len(page.Flows), v6, dirs)
		if dirs["unknown"] > 0 || len(page.Flows) < 100 {
			t.Errorf("router %s: %d of %d flows have direction unknown", r.Name, dirs["unknown"], len(page.Flows))
		}
		if v6 == 0 || unnamed > 0 {
			t.Errorf("router %s: %d IPv6 flows (want some), %d download or upload flows without a subscriber name (want none)", r.Name, v6, unnamed)
		}
	}
	// The usage report lists the subscribers of each router with traffic
	// both ways (the minute rollups were flushed: the top talkers are in).
	for _, r := range routers {
		var usage struct {
			Count int `json:"count"`
			Total struct {
				Down uint64 `json:"download_bytes"`
				Up   uint64 `json:"upload_bytes"`
			} `json:"total"`
			Rows []struct {
				Subscriber string `json:"subscriber"`
				RouterID   int64  `json:"router_id"`
			} `json:"rows"`
		}
		if code := c.get(fmt.Sprintf("/api/v1/subscribers/usage?router=%d&range=1h&limit=10", r.ID), &usage); code != 200 {
			t.Fatalf("router %s: usage answered %d", r.Name, code)
		}
		t.Logf("router %s: usage of %d subscribers, %d bytes down, %d up", r.Name, usage.Count, usage.Total.Down, usage.Total.Up)
		if usage.Count < 20 || usage.Total.Down == 0 || usage.Total.Up == 0 || len(usage.Rows) != 10 ||
			usage.Rows[0].Subscriber == "" || usage.Rows[0].RouterID != r.ID {
			t.Errorf("router %s: usage %+v", r.Name, usage)
		}
	}
	return password
}
