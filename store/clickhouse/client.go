package clickhouse

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
)

// maxResult bounds the body of a query's answer the client reads.
const maxResult = 256 << 20

// ServerError is an exception ClickHouse answered.
type ServerError struct {
	// Code is ClickHouse's error code (60 UNKNOWN_TABLE, 62 SYNTAX_ERROR,
	// 516 AUTHENTICATION_FAILED...), 0 when the answer had none.
	Code int
	// Status is the HTTP status.
	Status int
	// Message is the exception's text.
	Message string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("clickhouse answered %d: %s", e.Status, e.Message)
}

// Client sends statements to ClickHouse's HTTP interface. It is safe for
// concurrent use.
type Client struct {
	cfg      Config
	http     *http.Client
	bases    []*url.URL
	password string
	next     atomic.Uint32 // the address tried first
	logger   *slog.Logger
}

// NewClient builds a client of cfg (validated first); it reads the
// password file and the CA file, and connects to nothing yet.
func NewClient(cfg Config, logger *slog.Logger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid clickhouse config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, logger: logger}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read clickhouse.password-file: %w", err)
		}
		c.password, _, _ = strings.Cut(string(b), "\n")
		c.password = strings.TrimRight(c.password, "\r")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 8
	scheme := "http"
	if cfg.TLS.Enabled {
		scheme = "https"
		tc := &tls.Config{ServerName: cfg.TLS.ServerName, MinVersion: tls.VersionTLS12}
		if cfg.TLS.CAFile != "" {
			pem, err := os.ReadFile(cfg.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("cannot read clickhouse.tls.ca-file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("clickhouse.tls.ca-file %s: no PEM certificate in it", cfg.TLS.CAFile)
			}
		}
		tr.TLSClientConfig = tc
	}
	c.http = &http.Client{Transport: tr, Timeout: cfg.Timeout}
	for _, a := range cfg.Addresses {
		u := &url.URL{Scheme: scheme, Host: a, Path: "/"}
		c.bases = append(c.bases, u)
	}
	return c, nil
}

// Database returns the database the client works in.
func (c *Client) Database() string { return c.cfg.Database }

// Exec runs a statement that returns nothing (DDL, INSERT ... SELECT).
func (c *Client) Exec(ctx context.Context, stmt string) error {
	_, err := c.do(ctx, stmt, nil, false)
	return err
}

// Query runs a statement and returns its answer (the statement chooses
// its FORMAT; TabSeparated without one).
func (c *Client) Query(ctx context.Context, stmt string) ([]byte, error) {
	return c.do(ctx, stmt, nil, true)
}

// Insert runs an INSERT whose data is data, in the format the statement
// ends with (INSERT INTO t (cols) FORMAT RowBinary).
func (c *Client) Insert(ctx context.Context, stmt string, data []byte) error {
	_, err := c.do(ctx, stmt, data, false)
	return err
}

// do sends one request: the statement in the body, or in the query
// parameter with data in the body. It tries the next address when one
// cannot be reached; an answer of ClickHouse, even an error, ends it.
func (c *Client) do(ctx context.Context, stmt string, data []byte, result bool) ([]byte, error) {
	if c.cfg.Cluster != "" {
		stmt = foregroundInsert(stmt)
	}
	first := int(c.next.Load()) % len(c.bases)
	var errs []error
	for i := range c.bases {
		n := (first + i) % len(c.bases)
		out, err := c.send(ctx, c.bases[n], stmt, data, result)
		var se *ServerError
		if err == nil || errors.As(err, &se) || ctx.Err() != nil {
			if i > 0 {
				c.next.Store(uint32(n))
			}
			return out, err
		}
		errs = append(errs, err)
		c.logger.Warn("clickhouse unreachable, trying the next address", "address", c.bases[n].Host, "err", err)
	}
	return nil, fmt.Errorf("cannot reach clickhouse: %w", errors.Join(errs...))
}

func (c *Client) send(ctx context.Context, base *url.URL, stmt string, data []byte, result bool) ([]byte, error) {
	u := *base
	// No database parameter: it must exist before the request, and the
	// statements name their tables' database.
	q := url.Values{}
	body := []byte(stmt)
	if data != nil {
		q.Set("query", stmt)
		body = data
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("cannot build the request to %s: %w", base.Host, err)
	}
	req.Header.Set("X-ClickHouse-User", c.cfg.User)
	if c.password != "" {
		req.Header.Set("X-ClickHouse-Key", c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", base.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, serverError(resp)
	}
	if !result {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil, nil
	}
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxResult+1))
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read the answer: %w", base.Host, err)
	}
	if len(out) > maxResult {
		return nil, fmt.Errorf("%s: the answer exceeds %d MiB", base.Host, maxResult>>20)
	}
	return out, nil
}

var codeRE = regexp.MustCompile(`Code: (\d+)\.`)

// serverError reads ClickHouse's exception from an answer that is not 200.
func serverError(resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &ServerError{Status: resp.StatusCode, Message: strings.TrimSpace(firstLines(string(msg), 5))}
	if e.Message == "" {
		e.Message = resp.Status
	}
	if h := resp.Header.Get("X-ClickHouse-Exception-Code"); h != "" {
		e.Code, _ = strconv.Atoi(h)
	} else if m := codeRE.FindStringSubmatch(e.Message); m != nil {
		e.Code, _ = strconv.Atoi(m[1])
	}
	return e
}

func firstLines(s string, n int) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	var out []string
	for len(out) < n && sc.Scan() {
		out = append(out, sc.Text())
	}
	return strings.Join(out, "\n")
}
