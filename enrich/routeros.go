package enrich

import (
	"context"
	"fmt"

	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/store"
)

// DialRouterOS is the production DialFunc: it logs in to r over the
// RouterOS API with routeros (TLS pinned to r.TLSFingerprint when
// set).
func DialRouterOS(ctx context.Context, r store.Router) (RouterAPI, error) {
	c, err := routeros.Dial(ctx, routeros.Options{Address: r.Address, Username: r.Username, Password: r.Password,
		TLS: r.TLS, Fingerprint: r.TLSFingerprint})
	if err != nil {
		return nil, fmt.Errorf("cannot dial router %s: %w", r.Name, err)
	}
	return c, nil
}
