// Package chtest starts, for tests, a loopback endpoint that speaks
// ClickHouse's HTTP interface and runs what it receives on chDB, the
// ClickHouse engine as a library (chdbhttp). chDB is libchdb.so of the npm
// package chdb 3.4.0 (ClickHouse 26.7): CHDB_LIB_PATH names it, or `make
// chdb` installs it where LibPath looks. Without it a test skips, or fails
// when FLOWBOX_FUNCTIONAL_TESTS=1 (CI installs it).
package chtest

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
)

// Cluster is the cluster every endpoint defines, of one shard: the
// endpoint itself (chdbhttp -cluster). A store whose clickhouse.cluster
// names it keeps its flows in Distributed tables.
const Cluster = "flowbox_test"

// ClusterEnv, when set, names the cluster the ClickHouse stores of the
// tests use (store.clickhouse.cluster): Cluster with chDB, or a cluster of
// the real server of FLOWBOX_CLICKHOUSE_URL. `make test` runs the
// ClickHouse store's tests once more with it.
const ClusterEnv = "FLOWBOX_CLICKHOUSE_CLUSTER"

// Server is a running chdbhttp endpoint.
type Server struct {
	// Addr is its host:port on loopback.
	Addr string
	// User and Password are the credentials it accepts.
	User, Password string
}

// LibPath returns the libchdb.so to use: CHDB_LIB_PATH, or where `make
// chdb` installs it (~/.cache/flowbox/chdb); "" when neither exists.
func LibPath() string {
	if p := os.Getenv("CHDB_LIB_PATH"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		return ""
	}
	home, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	p := filepath.Join(home, "flowbox", "chdb", "node_modules", "@chdb", "lib-linux-x64-gnu", "libchdb.so")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// Start builds and starts chdbhttp with a fresh chDB data directory, and
// stops it when the test ends. It skips the test when chDB is missing
// (fails with FLOWBOX_FUNCTIONAL_TESTS=1).
func Start(t testing.TB) *Server {
	t.Helper()
	s, stop := start(t, filepath.Join(t.TempDir(), "data"))
	t.Cleanup(stop)
	return s
}

// StartIn is Start on the chDB data directory dir, which it keeps: a
// benchmark's dataset reused by its next runs.
func StartIn(t testing.TB, dir string) *Server {
	t.Helper()
	s, stop := start(t, dir)
	t.Cleanup(stop)
	return s
}

var shared struct {
	once sync.Once
	srv  *Server
}

// Shared returns the chdbhttp endpoint the tests of this process share,
// started by the first caller (skipping or failing as Start does): its
// data directory is temporary, and it stops when this process exits (its
// standard input closes). Tests that share it keep apart by database or
// by site.
func Shared(t testing.TB) *Server {
	t.Helper()
	if LibPath() == "" {
		testutil.SkipOrFail(t, "chDB is missing: set CHDB_LIB_PATH to libchdb.so, or run `make chdb` (npm package chdb 3.4.0)")
	}
	shared.once.Do(func() {
		// A failed start fails this test (start calls t.Fatal, and Do
		// returns); the tests after it fail with the message below.
		shared.srv, _ = start(t, "") // runs until the process exits
	})
	if shared.srv == nil {
		t.Fatal("the shared chdbhttp endpoint did not start (see the first test that asked for it)")
	}
	return shared.srv
}

// start builds and starts chdbhttp on dir ("" for a temporary one) and
// returns it with the function that stops it.
func start(t testing.TB, dir string) (*Server, func()) {
	t.Helper()
	lib := LibPath()
	if lib == "" {
		testutil.SkipOrFail(t, "chDB is missing: set CHDB_LIB_PATH to libchdb.so, or run `make chdb` (npm package chdb 3.4.0)")
	}
	bin := testutil.BuildCommand(t, "./store/clickhouse/chtest/chdbhttp")
	s := &Server{User: "flowbox", Password: "test-password"}
	ctx, cancel := context.WithCancel(context.Background())
	args := []string{"-listen", "127.0.0.1:0", "-user", s.User, "-password", s.Password, "-cluster", Cluster}
	if dir != "" {
		args = append(args, "-dir", dir)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "CHDB_LIB_PATH="+lib)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("cannot start chdbhttp: %v", err)
	}
	stop := func() {
		stdin.Close() // chdbhttp stops when its input closes
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cancel()
			<-done
		}
		cancel()
	}
	// The first line is the address (chDB takes a second or two to load).
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
	}()
	var l string
	var ok bool
	select {
	case l, ok = <-line:
	case <-time.After(2 * time.Minute): // a guard against a hang, not a timing
		ok = false
	}
	if !ok {
		cancel()
	}
	addr, found := strings.CutPrefix(l, "listening on ")
	if !ok || !found {
		cmd.Wait()
		t.Fatalf("chdbhttp did not start: %q\n%s", l, stderr.String())
	}
	s.Addr = addr
	return s, stop
}
