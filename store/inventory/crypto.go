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

// passwordAAD binds router password ciphertexts to their use.
var passwordAAD = []byte("flowbox router password v1")

// seal encrypts a password with AES-256-GCM: nonce || ciphertext.
func seal(key []byte, plain string) ([]byte, error) {
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
	return aead.Seal(nonce, nonce, []byte(plain), passwordAAD), nil
}

// open decrypts what seal produced. Its errors never contain the password.
func open(key, sealed []byte) (string, error) {
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
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], passwordAAD)
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
