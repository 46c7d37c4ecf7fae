// Package routeros is flowbox's only door to the RouterOS API. It wraps
// github.com/go-routeros/routeros/v3 (v3.0.1) and fixes what that library
// leaves to the caller (docs/routeros.md §2):
//
//   - Dial opens its own net.Conn (or a TLS connection whose certificate is
//     pinned by SHA-256 fingerprint on first use), hands it to
//     routeros.NewClient, and sets a deadline before Login and before every
//     command, clearing it after. The library's sync mode ignores contexts,
//     so a silent router would otherwise hang forever.
//   - Login works with RouterOS >= 6.43 (plain) and older routers
//     (challenge/response); the library tries both.
//   - After a timeout, an EOF, a `!fatal` or a parse error the stream may
//     have stopped mid-sentence: the Conn is marked broken and every later
//     Run fails with ErrBroken until the caller dials again.
//   - Errors are typed (ErrAuth, ErrRefused, ErrTimeout, ErrFingerprint,
//     ErrPermission, ErrUnknown, ErrDropped, ...) so callers can branch.
//   - The library's logger is replaced by a discarding handler: its Debug
//     output would contain the /login password. Transcripts kept by Conn
//     redact `=password=` and `=response=` words.
//
// A Conn is meant to be used by one goroutine at a time (the library's
// reader is not goroutine-safe); a mutex still serialises commands so that a
// mistake cannot mix up replies.
package routeros

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	ros "github.com/go-routeros/routeros/v3"
	"github.com/go-routeros/routeros/v3/proto"
)

// Default API ports.
const (
	PortAPI    = 8728
	PortAPISSL = 8729
)

// Defaults used when Options leave a timeout at zero.
const (
	DefaultDialTimeout    = 5 * time.Second
	DefaultCommandTimeout = 10 * time.Second
	// MaxTranscript bounds the lines a Conn keeps; older lines are dropped
	// and counted.
	MaxTranscript = 1000
)

// Options says how to reach and log in to a router.
type Options struct {
	// Address is host:port; the port defaults to 8728 (8729 with TLS).
	Address  string
	Username string
	Password string
	// TLS selects API-SSL. The certificate is not checked against a CA:
	// it is pinned by fingerprint (trust on first use).
	TLS bool
	// Fingerprint is the pinned hex SHA-256 of the router's leaf
	// certificate; "" accepts any certificate and records it (see
	// Conn.Fingerprint).
	Fingerprint string
	// DialTimeout bounds the TCP connect and the TLS handshake.
	DialTimeout time.Duration
	// CommandTimeout bounds the login and each command.
	CommandTimeout time.Duration
}

// Row is one record of a reply: property name to value, as the router sent
// it (strings; booleans are "true"/"false").
type Row map[string]string

// Reply is the answer to one command: the `!re` rows and the `!done`
// attributes (e.g. "ret" after add).
type Reply struct {
	Re   []Row
	Done Row
}

// Conn is a logged-in API session with one router.
type Conn struct {
	mu          sync.Mutex
	nc          net.Conn
	client      *ros.Client
	address     string
	timeout     time.Duration
	fingerprint string
	broken      error

	transcript []string
	dropped    int
}

// WithDefaultPort returns address with the API port appended when it has
// none.
func WithDefaultPort(address string, useTLS bool) string {
	if _, _, err := net.SplitHostPort(address); err == nil {
		return address
	}
	port := PortAPI
	if useTLS {
		port = PortAPISSL
	}
	host := strings.TrimSuffix(strings.TrimPrefix(address, "["), "]")
	return net.JoinHostPort(host, fmt.Sprint(port))
}

// Dial connects to the router and logs in. The context bounds the whole
// dial and login, and so does opts.DialTimeout / opts.CommandTimeout.
func Dial(ctx context.Context, opts Options) (*Conn, error) {
	if opts.Address == "" {
		return nil, errors.New("cannot dial router: empty address")
	}
	if opts.Username == "" {
		return nil, errors.New("cannot dial router: empty username")
	}
	address := WithDefaultPort(opts.Address, opts.TLS)
	dialTimeout := opts.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = DefaultDialTimeout
	}
	cmdTimeout := opts.CommandTimeout
	if cmdTimeout <= 0 {
		cmdTimeout = DefaultCommandTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()

	var (
		nc  net.Conn
		err error
		got string
	)
	netDialer := &net.Dialer{Timeout: dialTimeout}
	if opts.TLS {
		pinned := strings.ToLower(opts.Fingerprint)
		cfg := &tls.Config{
			// The router's certificate is self-signed: instead of a CA we
			// pin its fingerprint in VerifyConnection.
			InsecureSkipVerify: true, //nolint:gosec // verified by pinning below
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("router presented no certificate")
				}
				sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
				got = hex.EncodeToString(sum[:])
				if pinned != "" && pinned != got {
					return &FingerprintError{Address: address, Pinned: pinned, Got: got}
				}
				return nil
			},
		}
		nc, err = (&tls.Dialer{NetDialer: netDialer, Config: cfg}).DialContext(dctx, "tcp", address)
	} else {
		nc, err = netDialer.DialContext(dctx, "tcp", address)
	}
	if err != nil {
		return nil, dialError(ctx, address, err)
	}
	client, err := ros.NewClient(nc)
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("cannot start API session with %s: %w", address, err)
	}
	// Never let the library log: its Debug output contains the password.
	client.SetLogHandler(slog.DiscardHandler)
	c := &Conn{nc: nc, client: client, address: address, timeout: cmdTimeout, fingerprint: got}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.record("> /login =name=" + opts.Username + " =password=***")
	stop := c.arm(ctx)
	err = client.Login(opts.Username, opts.Password)
	stop()
	if err != nil {
		c.record("< login failed")
		_ = client.Close()
		var de *ros.DeviceError
		if errors.As(err, &de) && de.Sentence.Word == "!trap" {
			return nil, fmt.Errorf("cannot log in to %s as %q: %w (router said %q)",
				address, opts.Username, ErrAuth, de.Sentence.Map["message"])
		}
		return nil, fmt.Errorf("cannot log in to %s: %w", address, ioError(ctx, err, c.timeout))
	}
	c.record("< !done")
	return c, nil
}

// dialError turns a connect error into a typed one.
func dialError(ctx context.Context, address string, err error) error {
	var fe *FingerprintError
	if errors.As(err, &fe) {
		return fmt.Errorf("cannot connect to %s: %w", address, fe)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("cannot connect to %s: %w", address, ErrRefused)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("cannot connect to %s: %w", address, ctx.Err())
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("cannot connect to %s: %w (no answer to the TCP connect)", address, ErrTimeout)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("cannot connect to %s: %w during the TLS handshake (is api-ssl enabled with a certificate?)", address, ErrDropped)
	}
	return fmt.Errorf("cannot connect to %s: %w", address, err)
}

// ioError turns a read/write error into a typed one.
func ioError(ctx context.Context, err error, timeout time.Duration) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if d, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w (no answer within %v)", ErrTimeout, timeout)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%w by the router", ErrDropped)
	}
	var de *ros.DeviceError
	if errors.As(err, &de) {
		return fmt.Errorf("%w: router sent %s %q", ErrDropped, de.Sentence.Word, de.Sentence.Map["message"])
	}
	// go-routeros reports a `!fatal <reason>` as an invalid word: the
	// router is closing the session.
	if strings.Contains(err.Error(), "invalid RouterOS sentence word") {
		return fmt.Errorf("%w: router closed the session (%v)", ErrDropped, err)
	}
	return fmt.Errorf("%w: %v", ErrDropped, err)
}

// arm sets the deadline for one exchange and makes ctx cancellation
// interrupt it. The returned function clears both.
func (c *Conn) arm(ctx context.Context) func() {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		// The context's deadline is the binding one: its expiry must be
		// reported as such, even if the socket deadline fires first.
		deadline = d
	}
	_ = c.nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		_ = c.nc.SetDeadline(time.Time{})
	}
}

// Print returns the rows of path/print with the properties of proplist
// (query words narrow them). A menu or property the router lacks gives an
// error wrapping ErrUnavailable.
func (c *Conn) Print(ctx context.Context, path string, proplist []string, query ...string) ([]map[string]string, error) {
	words := append([]string{path + "/print", "=.proplist=" + strings.Join(proplist, ",")}, query...)
	rep, err := c.Run(ctx, words...)
	if errors.Is(err, ErrUnknown) {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrUnavailable, err)
	}
	if err != nil {
		return nil, err
	}
	out := make([]map[string]string, len(rep.Re))
	for i, r := range rep.Re {
		out[i] = r
	}
	return out, nil
}

// Run sends one command (a command word followed by attribute and query
// words) and returns its reply. A `!trap` gives a *TrapError and leaves the
// Conn usable; any other failure marks it broken.
func (c *Conn) Run(ctx context.Context, words ...string) (*Reply, error) {
	if len(words) == 0 {
		return nil, errors.New("cannot run an empty command")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return nil, fmt.Errorf("%s: %w (%v)", words[0], ErrBroken, c.broken)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", words[0], err)
	}
	c.record("> " + redact(words))
	stop := c.arm(ctx)
	r, err := c.client.RunArgs(words)
	stop()
	out := &Reply{Done: Row{}}
	if r != nil {
		for _, s := range r.Re {
			row := make(Row, len(s.List))
			for _, p := range s.List {
				row[p.Key] = p.Value
			}
			out.Re = append(out.Re, row)
			c.record("< !re " + formatRow(s.List))
		}
		if r.Done != nil {
			for _, p := range r.Done.List {
				out.Done[p.Key] = p.Value
			}
		}
	}
	if err != nil {
		var de *ros.DeviceError
		if errors.As(err, &de) && de.Sentence.Word == "!trap" && r != nil {
			c.record("< !trap =message=" + de.Sentence.Map["message"])
			return out, classifyTrap(words[0], de.Sentence.Map["message"], de.Sentence.Map["category"])
		}
		typed := ioError(ctx, err, c.timeout)
		c.broken = typed
		c.record("< " + typed.Error())
		_ = c.client.Close()
		return nil, fmt.Errorf("%s: %w", words[0], typed)
	}
	if r != nil && r.Done != nil {
		c.record("< !done " + formatRow(r.Done.List))
	}
	return out, nil
}

// Fingerprint returns the hex SHA-256 of the router's TLS certificate, ""
// for plain API connections.
func (c *Conn) Fingerprint() string { return c.fingerprint }

// Address returns the host:port the Conn is connected to.
func (c *Conn) Address() string { return c.address }

// LocalAddr returns the local address of the API connection: the address
// the router sees flowbox at, a good default for the collector address.
func (c *Conn) LocalAddr() netip.Addr {
	ap, err := netip.ParseAddrPort(c.nc.LocalAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// RemoteAddr returns the router's address as flowbox reaches it (its API
// host resolved): behind NAT or a port forward, the NAT's address.
func (c *Conn) RemoteAddr() netip.Addr {
	ap, err := netip.ParseAddrPort(c.nc.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// Broken returns the error that broke the Conn, nil while it is usable.
func (c *Conn) Broken() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// Transcript returns the sentences exchanged so far (passwords redacted),
// one line per sentence, and the number of older lines dropped to keep the
// bound.
func (c *Conn) Transcript() ([]string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.transcript...), c.dropped
}

// Close ends the session.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken == nil {
		c.broken = errors.New("closed")
	}
	if err := c.client.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("cannot close API session with %s: %w", c.address, err)
	}
	return nil
}

func (c *Conn) record(line string) {
	if len(c.transcript) >= MaxTranscript {
		n := copy(c.transcript, c.transcript[1:])
		c.transcript = c.transcript[:n]
		c.dropped++
	}
	c.transcript = append(c.transcript, line)
}

// redact joins words, hiding password and challenge-response values.
func redact(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = RedactWord(w)
	}
	return strings.Join(out, " ")
}

// RedactWord hides the value of =password= and =response= words.
func RedactWord(w string) string {
	for _, k := range []string{"=password=", "=response="} {
		if strings.HasPrefix(w, k) {
			return k + "***"
		}
	}
	return w
}

// formatRow renders attributes as =key=value words, redacting secrets.
func formatRow(list []proto.Pair) string {
	words := make([]string, len(list))
	for i, p := range list {
		words[i] = RedactWord("=" + p.Key + "=" + p.Value)
	}
	return strings.Join(words, " ")
}
