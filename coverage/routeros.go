package coverage

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/store"
)

// DialRouterOS is the production DialFunc: it logs in to r over the
// RouterOS API (TLS pinned to r.TLSFingerprint when set).
func DialRouterOS(ctx context.Context, r store.Router) (API, error) {
	c, err := routeros.Dial(ctx, routeros.Options{Address: r.Address, Username: r.Username, Password: r.Password,
		TLS: r.TLS, Fingerprint: r.TLSFingerprint})
	if err != nil {
		return nil, fmt.Errorf("cannot dial router %s: %w", r.Name, err)
	}
	return rosAPI{c}, nil
}

// rosAPI adapts *routeros.Conn to API.
type rosAPI struct{ c *routeros.Conn }

func (a rosAPI) Print(ctx context.Context, path string, proplist []string, query ...string) ([]map[string]string, error) {
	words := append([]string{path + "/print", "=.proplist=" + strings.Join(proplist, ",")}, query...)
	rep, err := a.c.Run(ctx, words...)
	if errors.Is(err, routeros.ErrUnknown) {
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

func (a rosAPI) Close() error { return a.c.Close() }
