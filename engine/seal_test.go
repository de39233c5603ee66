package engine

import (
	"bytes"
	"testing"
)

func TestSealer(t *testing.T) {
	s, err := NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("sk_test_stripe_secret")
	sealed := s.Seal(secret, []byte("plt_a"))
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := s.Open(sealed, []byte("plt_a"))
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s.Open(sealed, []byte("plt_b")); err == nil {
		t.Error("opened with another platform's aad")
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := s.Open(sealed, []byte("plt_a")); err == nil {
		t.Error("opened a tampered value")
	}
	if _, err := NewSealer([]byte("short")); err == nil {
		t.Error("accepted a short key")
	}
}
