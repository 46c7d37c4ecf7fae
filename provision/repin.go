package provision

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/store"
)

// EnableAPISSL is the RouterOS terminal commands that give the API-SSL
// service (port 8729) a self-signed certificate: without one, RouterOS
// offers only anonymous Diffie-Hellman, which no Go client speaks.
const EnableAPISSL = "/certificate add name=flowbox-api common-name=flowbox-api days-valid=3650 key-usage=digital-signature,key-encipherment,tls-server; " +
	"/certificate sign flowbox-api; /ip service set api-ssl certificate=flowbox-api disabled=no"

// apiSSLHint adds to a failed API-SSL connection how to enable API-SSL on
// the router, when the failure looks like a missing service or
// certificate (refused, or dropped during the handshake).
func apiSSLHint(err error, useTLS bool) error {
	if err == nil || !useTLS {
		return err
	}
	if errors.Is(err, routeros.ErrRefused) || errors.Is(err, routeros.ErrDropped) {
		return fmt.Errorf("%w; if API-SSL is not enabled with a certificate on the router, run in its terminal: %s", err, EnableAPISSL)
	}
	var plain tls.RecordHeaderError
	if errors.As(err, &plain) || errors.Is(err, routeros.ErrTimeout) {
		// A plain-API port answers the TLS greeting with garbage, or
		// waits for the rest of what it takes for an API sentence.
		return fmt.Errorf("%w; if that port is the plain API, not API-SSL: enable API-SSL on the router (in its terminal: %s) and give its port (8729), "+
			"or choose the plain API explicitly (it sends the password in clear)", err, EnableAPISSL)
	}
	return err
}

// Repin is what re-pinning a router's certificate changes: the pinned
// fingerprint and the one the router presents now (hex SHA-256).
type Repin struct {
	Old string
	New string
}

// unpinnable is a fingerprint no certificate has: dialing with it pinned
// fails in the TLS handshake, before the login, and the error carries the
// certificate's fingerprint.
var unpinnable = strings.Repeat("x", 64)

// presented returns the fingerprint of the certificate the router presents
// now, without logging in: no password crosses a connection whose
// certificate is not trusted yet.
func (p *Provisioner) presented(ctx context.Context, r *store.Router) (string, error) {
	conn, err := p.dial(ctx, routeros.Options{
		Address: r.Address, Username: r.Username, TLS: true, Fingerprint: unpinnable,
		DialTimeout: p.cfg.DialTimeout, CommandTimeout: p.cfg.CommandTimeout,
	})
	if err == nil {
		_ = conn.Close()
		return "", errors.New("cannot read the router's certificate: the connection did not check it")
	}
	var fe *routeros.FingerprintError
	if errors.As(err, &fe) {
		return fe.Got, nil
	}
	return "", apiSSLHint(err, true)
}

// CheckRepin connects to an API-SSL router and returns its pinned
// certificate fingerprint and the one it presents now, for the operator to
// compare before Repin.
func (p *Provisioner) CheckRepin(ctx context.Context, name string) (Repin, error) {
	r, err := p.store.GetRouter(ctx, name)
	if err != nil {
		return Repin{}, fmt.Errorf("cannot load router %s: %w", name, err)
	}
	if !r.TLS {
		return Repin{}, fmt.Errorf("router %s uses the plain API: there is no certificate to pin (re-add it with API-SSL)", name)
	}
	got, err := p.presented(ctx, r)
	if err != nil {
		return Repin{}, fmt.Errorf("cannot read the certificate of router %s: %w", name, err)
	}
	return Repin{Old: r.TLSFingerprint, New: got}, nil
}

// Repin pins the certificate the router presents now, which must be the
// one the operator confirmed (confirmed, hex SHA-256 as CheckRepin
// returned it), then logs in over it to check and stores it. The history
// records the old and new fingerprints.
func (p *Provisioner) Repin(ctx context.Context, name, confirmed string) (*store.Router, error) {
	confirmed = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(confirmed), ":", ""))
	if len(confirmed) != 64 {
		return nil, fmt.Errorf("cannot re-pin router %s: fingerprint: want the 64 hex digits of a SHA-256", name)
	}
	return p.operation(ctx, name, "repin", func(r *store.Router, rec *recorder) error {
		if !r.TLS {
			return fmt.Errorf("router %s uses the plain API: there is no certificate to pin", name)
		}
		got, err := p.presented(ctx, r)
		if err != nil {
			return err
		}
		if got != confirmed {
			return fmt.Errorf("the router presents the certificate %s, not the confirmed %s: check again", got, confirmed)
		}
		old := r.TLSFingerprint
		r.TLSFingerprint = got
		if err := p.withSession(ctx, r, rec, func(*session) error { return nil }); err != nil {
			return err
		}
		rec.summary = fmt.Sprintf("certificate re-pinned: %s (was %s)", got, old)
		return p.store.UpdateRouter(ctx, r)
	})
}
