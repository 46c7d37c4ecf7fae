package inventory

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/flowbox/flowbox/store"
)

// passwordAADv1 bound a router password ciphertext to its use only; such
// ciphertexts are still read and are sealed again, bound to their router,
// at the router's next update.
var passwordAADv1 = []byte("flowbox router password v1")

// passwordAAD binds a router password ciphertext to its use and to its
// router (by its unique name): a ciphertext copied into another router's
// row does not decrypt there.
func passwordAAD(router string) []byte {
	return append([]byte("flowbox router password v2\x00"), router...)
}

// seal encrypts a password for router with AES-256-GCM: nonce ||
// ciphertext, bound to the router (passwordAAD).
func seal(key []byte, plain, router string) ([]byte, error) {
	if plain == "" {
		return nil, nil
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return nil, fmt.Errorf("cannot generate nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, []byte(plain), passwordAAD(router)), nil
}

// open decrypts what seal produced for router (or a v1 ciphertext). Its
// errors never contain the password.
func open(key, sealed []byte, router string) (string, error) {
	if len(sealed) == 0 {
		return "", nil
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("cannot decrypt password: ciphertext too short")
	}
	nonce, ct := sealed[:aead.NonceSize()], sealed[aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, ct, passwordAAD(router))
	if err != nil {
		plain, err = aead.Open(nil, nonce, ct, passwordAADv1) // before the binding
	}
	if err != nil {
		return "", errors.New("cannot decrypt password: wrong key file or damaged data")
	}
	return string(plain), nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != store.KeySize {
		return nil, errors.New("no encryption key (store opened read-only)")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("cannot create cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("cannot create cipher: %w", err)
	}
	return aead, nil
}
