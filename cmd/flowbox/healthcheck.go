package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// runHealthcheck asks a running flowbox for /healthz and fails unless it
// answers 200, for container HEALTHCHECKs in an image without curl. The URL
// is --url, or is derived from the web listen address: FLOWBOX_LISTEN_WEB,
// else web.listen of --config, else :8080; an unspecified host becomes
// loopback, and HTTPS is used when the configuration enables TLS (the
// certificate of a derived URL is not verified: it is our own listener,
// possibly self-signed, asked over loopback).
func runHealthcheck(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "healthcheck")
	rawURL := fs.String("url", "", "`URL` to ask (default: /healthz on the configured web listen address)")
	cfgPath := fs.String("config", "", "configuration `FILE` giving the web listen address and TLS")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after `D`")
	insecure := fs.Bool("insecure", false, "do not verify the TLS certificate of --url")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{"usage: flowbox healthcheck [--url URL | --config FILE] [--timeout D] [--insecure]"}
	}
	if *timeout <= 0 {
		return usageError{"healthcheck: --timeout must be positive"}
	}
	target := *rawURL
	skipVerify := *insecure
	if target == "" {
		cfg, err := LoadConfig(*cfgPath)
		if err != nil {
			return err
		}
		envOverrides(e.getenv, nil)(&cfg)
		if target, err = healthURL(cfg.Web.Listen, cfg.Web.TLS.Enabled()); err != nil {
			return err
		}
		skipVerify = true
	} else if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Sprintf("healthcheck: --url %q is not an http(s) URL", target)}
	}

	client := &http.Client{
		Timeout: *timeout,
		Transport: &http.Transport{
			// No proxy: one from the environment must not answer for us.
			Proxy: nil,
			// Derived URLs are our own loopback listener (see above).
			TLSClientConfig: &tls.Config{InsecureSkipVerify: skipVerify},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("cannot build health request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: %s answered %s", target, resp.Status)
	}
	fmt.Fprintf(e.stdout, "healthy: %s answered %s\n", target, resp.Status)
	return nil
}

// healthURL returns the /healthz URL of a web listen address, with an
// unspecified host replaced by loopback.
func healthURL(listen string, useTLS bool) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("healthcheck: web listen address %q: %w", listen, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port), Path: "/healthz"}
	return u.String(), nil
}
