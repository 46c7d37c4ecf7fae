package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
)

const keySize = 32

// passwordAAD binds ciphertexts to their purpose.
var passwordAAD = []byte("flowbox router password v1")

// loadOrCreateKey reads the 32-byte key file, creating it with mode 0600
// when absent. A key of the wrong size, or readable by group or others, is
// refused: router passwords would be unreadable or exposed.
func loadOrCreateKey(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		key := make([]byte, keySize)
		if _, err := io.ReadFull(rand.Reader, key); err != nil {
			f.Close()
			os.Remove(path)
			return nil, fmt.Errorf("cannot generate key: %w", err)
		}
		if _, err := f.Write(key); err != nil {
			f.Close()
			os.Remove(path)
			return nil, fmt.Errorf("cannot write key file %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			os.Remove(path)
			return nil, fmt.Errorf("cannot write key file %s: %w", path, err)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cannot create key file %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read key file: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %04o: it must not be readable by group or others (chmod 600 it)", path, perm)
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read key file: %w", err)
	}
	if len(key) != keySize {
		return nil, fmt.Errorf("key file %s holds %d bytes, want %d: it is damaged (restore it from a backup; without it router passwords cannot be decrypted)", path, len(key), keySize)
	}
	return key, nil
}

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
	if len(key) != keySize {
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
