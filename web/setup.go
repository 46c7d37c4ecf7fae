package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SetupTokenFile is the file in the data directory that holds the one-time
// setup token while no console user exists (`flowbox setup-token` prints
// it). Whoever creates the first user on /setup must give it, so a fresh
// install on a network cannot be claimed by the first visitor, nor by a web
// page through DNS rebinding. It is removed once the first user exists.
const SetupTokenFile = "setup-token"

// ensureSetupToken loads the setup token from the data directory, or makes
// one (mode 0600), and logs where it is. Without a data directory (tests)
// the token lives in memory only.
func (s *Server) ensureSetupToken() error {
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	if s.setupToken != "" {
		return nil
	}
	path := ""
	if s.deps.DataDir != "" {
		path = filepath.Join(s.deps.DataDir, SetupTokenFile)
		if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 16 {
			s.setupToken = strings.TrimSpace(string(b))
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot read the setup token: %w", err)
		}
	}
	if s.setupToken == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("cannot make a setup token: %w", err)
		}
		s.setupToken = hex.EncodeToString(b[:])
		if path != "" {
			if err := os.WriteFile(path, []byte(s.setupToken+"\n"), 0o600); err != nil {
				return fmt.Errorf("cannot save the setup token: %w", err)
			}
		}
	}
	s.log.Warn("no console user yet: open /setup and give this setup token (`flowbox setup-token` prints it again)",
		"setup_token", s.setupToken, "file", path)
	return nil
}

// checkSetupToken reports whether token is the setup token.
func (s *Server) checkSetupToken(token string) bool {
	s.setupMu.Lock()
	want := s.setupToken
	s.setupMu.Unlock()
	return want != "" && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(want)) == 1
}

// dropSetupToken forgets the token once the first user exists. The caller
// holds setupMu.
func (s *Server) dropSetupTokenLocked() {
	s.setupToken = ""
	if s.deps.DataDir != "" {
		if err := os.Remove(filepath.Join(s.deps.DataDir, SetupTokenFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("cannot remove the setup token file", "err", err)
		}
	}
}
