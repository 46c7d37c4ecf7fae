package routerostest

import (
	"crypto/md5" //nolint:gosec
	"encoding/hex"
	"testing"
)

func challengeResponse(t *testing.T, password, challenge string) string {
	t.Helper()
	b, err := hex.DecodeString(challenge)
	if err != nil {
		t.Fatal(err)
	}
	h := md5.New() //nolint:gosec
	h.Write([]byte{0})
	h.Write([]byte(password))
	h.Write(b)
	return "00" + hex.EncodeToString(h.Sum(nil))
}
