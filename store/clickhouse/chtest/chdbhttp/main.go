// Command chdbhttp is a test transport: a loopback HTTP endpoint that
// speaks the part of ClickHouse's HTTP interface flowbox uses and runs
// every statement it receives on chDB, the ClickHouse engine as a library
// (libchdb.so, found through CHDB_LIB_PATH). It is not a database of its
// own: what it answers is what ClickHouse answers.
//
// It serves POST / with the statement in the query parameter "query", in
// the body, or both (the parameter first, as ClickHouse does); with
// data in the body, the statement must end with FORMAT and the data is
// inserted from a temporary file (INSERT ... FROM INFILE, before the
// INSERT's SETTINGS clause when it has one). The parameter
// "database" sets the current database; the headers X-ClickHouse-User and
// X-ClickHouse-Key must match -user and -password. Errors are answered as
// ClickHouse does: the exception's text, its code in
// X-ClickHouse-Exception-Code. Statements run one at a time.
//
// With -cluster NAME, chDB's configuration defines a cluster of that name
// whose one shard is this server, for flowbox's Distributed tables
// (store.clickhouse.cluster).
//
// It prints "listening on ADDR" once it serves, and stops when its
// standard input closes (the test that started it is gone).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/chdb-io/chdb-go/chdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	dir := flag.String("dir", "", "chDB's data directory (empty: a temporary one)")
	user := flag.String("user", "default", "user name to accept")
	password := flag.String("password", "", "password to accept")
	cluster := flag.String("cluster", "", "defines a cluster of this name whose one shard is this server (remote_servers)")
	flag.Parse()
	if err := run(*listen, *dir, *user, *password, *cluster); err != nil {
		log.Fatal(err)
	}
}

func run(listen, dir, user, password, cluster string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("bad -listen: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("bad -listen %s: a loopback address only", listen)
	}
	tmp, err := os.MkdirTemp("", "chdbhttp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if dir == "" {
		dir = filepath.Join(tmp, "data")
	}
	conn := dir
	if cluster != "" {
		// One shard, this server: a shard is local when its host is this
		// machine and its port the server's tcp_port (chDB listens on
		// none; it runs the shard's part in process).
		if !validName.MatchString(cluster) {
			return fmt.Errorf("bad -cluster %q", cluster)
		}
		conf := filepath.Join(tmp, "config.xml")
		xml := "<clickhouse>\n  <tcp_port>9000</tcp_port>\n  <remote_servers>\n    <" + cluster + ">\n      <shard><replica><host>127.0.0.1</host><port>9000</port></replica></shard>\n    </" + cluster + ">\n  </remote_servers>\n</clickhouse>\n"
		if err := os.WriteFile(conf, []byte(xml), 0o600); err != nil {
			return err
		}
		conn += "?config-file=" + conf
	}
	sess, err := chdb.NewSession(conn)
	if err != nil {
		return fmt.Errorf("cannot start chDB: %w", err)
	}
	defer sess.Close()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	h := &handler{sess: sess, tmp: tmp, user: user, password: password}
	srv := &http.Server{Handler: h}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		srv.Close()
	}()
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type handler struct {
	mu             sync.Mutex // chDB runs one statement at a time
	sess           *chdb.Session
	tmp            string
	n              int
	user, password string
}

var (
	formatTail = regexp.MustCompile(`(?is)\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$`)
	// settingsTail is an INSERT's SETTINGS clause before its FORMAT: FROM
	// INFILE goes before it.
	settingsTail = regexp.MustCompile(`(?is)\bSETTINGS\s+[^()]*?\bFORMAT\s+[A-Za-z0-9_]+\s*;?\s*$`)
	errorCode    = regexp.MustCompile(`^Code: (\d+)\.`)
	validName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		h.fail(w, 400, "Code: 1. DB::Exception: chdbhttp serves POST / only. (UNSUPPORTED_METHOD)")
		return
	}
	if r.Header.Get("X-ClickHouse-User") != h.user || r.Header.Get("X-ClickHouse-Key") != h.password {
		h.fail(w, 403, fmt.Sprintf("Code: 516. DB::Exception: %s: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)", r.Header.Get("X-ClickHouse-User")))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		h.fail(w, 400, "Code: 33. DB::Exception: cannot read the request body. (CANNOT_READ_ALL_DATA)")
		return
	}
	q := r.URL.Query()
	stmt := q.Get("query")
	var data []byte
	switch {
	case stmt == "":
		stmt = string(body)
	case len(body) > 0 && formatTail.MatchString(stmt):
		data = body
	default:
		stmt += " " + string(body)
	}
	if s := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(stmt), ";")); strings.Contains(s, ";") {
		h.fail(w, 400, "Code: 62. DB::Exception: Syntax error (Multi-statements are not allowed). (SYNTAX_ERROR)")
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if db := q.Get("database"); db != "" {
		if _, err := h.sess.Query("USE "+quoteIdent(db), "TabSeparated"); err != nil {
			h.fail(w, 404, err.Error())
			return
		}
	}
	if data != nil {
		h.n++
		path := filepath.Join(h.tmp, "insert-"+strconv.Itoa(h.n))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			h.fail(w, 500, "Code: 1001. DB::Exception: "+err.Error())
			return
		}
		defer os.Remove(path)
		if m := settingsTail.FindStringIndex(stmt); m != nil {
			stmt = stmt[:m[0]] + " FROM INFILE '" + path + "' " + stmt[m[0]:]
		} else {
			m := formatTail.FindStringSubmatchIndex(stmt)
			stmt = stmt[:m[0]] + " FROM INFILE '" + path + "' FORMAT " + stmt[m[2]:m[3]]
		}
	}
	res, err := h.sess.Query(stmt, "TabSeparated")
	if err != nil {
		status := 500
		if m := errorCode.FindStringSubmatch(err.Error()); m != nil {
			switch m[1] {
			case "62":
				status = 400
			case "60", "81":
				status = 404
			}
		}
		h.fail(w, status, err.Error())
		return
	}
	defer res.Free()
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Write(res.Buf())
}

func (h *handler) fail(w http.ResponseWriter, status int, msg string) {
	if m := errorCode.FindStringSubmatch(msg); m != nil {
		w.Header().Set("X-ClickHouse-Exception-Code", m[1])
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n")
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
