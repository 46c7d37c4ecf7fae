package inventory

import (
	"bytes"
	"crypto/rand"
	"io"
	"testing"
)

// TestPasswordBoundToRouter: a router password ciphertext decrypts only for
// its router (a row's ciphertext copied into another row fails), and
// ciphertexts sealed before the binding (v1) still decrypt.
func TestPasswordBoundToRouter(t *testing.T) {
	key := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		t.Fatal(err)
	}
	ct, err := seal(key, "s3cret-pw", "tower-a")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, []byte("s3cret")) {
		t.Fatal("the ciphertext holds the password")
	}
	if pw, err := open(key, ct, "tower-a"); err != nil || pw != "s3cret-pw" {
		t.Fatalf("open for its router: %q, %v", pw, err)
	}
	if pw, err := open(key, ct, "tower-b"); err == nil {
		t.Fatalf("a ciphertext of tower-a decrypted as tower-b's: %q", pw)
	}
	// A v1 ciphertext (no router in the associated data).
	aead, err := newAEAD(key)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	v1 := aead.Seal(append([]byte(nil), nonce...), nonce, []byte("old-pw"), passwordAADv1)
	if pw, err := open(key, v1, "any"); err != nil || pw != "old-pw" {
		t.Fatalf("v1 ciphertext: %q, %v", pw, err)
	}
	other := make([]byte, 32)
	if pw, err := open(other, ct, "tower-a"); err == nil {
		t.Fatalf("decrypted with another key: %q", pw)
	}
}
