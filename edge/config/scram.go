package config

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// SCRAM credentials (RFC 5802) are stored as PostgreSQL writes them,
//
//	SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
//
// (base64), so that the config file holds what a server needs to check a
// password and nothing a client could log in with.

// scramIterations is the PBKDF2 count of new credentials: Kafka's default
// for kafka-configs.sh --alter --add-config 'SCRAM-SHA-256=[iterations=4096,...]'.
const scramIterations = 4096

// SCRAMHashes are the SCRAM mechanisms Spool serves, with their hashes.
var SCRAMHashes = map[string]func() hash.Hash{
	"SCRAM-SHA-256": sha256.New,
	"SCRAM-SHA-512": sha512.New,
}

// SCRAMCredential is what a server stores to check a SCRAM login.
type SCRAMCredential struct {
	Mechanism            string
	Salt                 []byte
	Iterations           int
	StoredKey, ServerKey []byte
}

// MakeSCRAM derives a stored credential for mechanism from a password,
// with a fresh random salt. The password is used as its UTF-8 bytes, as
// Kafka's clients send it (no SASLprep).
func MakeSCRAM(mechanism, password string) (string, error) {
	h, ok := SCRAMHashes[mechanism]
	if !ok {
		return "", fmt.Errorf("unknown SCRAM mechanism %q", mechanism)
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	salted, err := pbkdf2.Key(h, password, salt, scramIterations, h().Size())
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(h, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	stored := h()
	stored.Write(clientKey)
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("%s$%d:%s$%s:%s", mechanism, scramIterations, b64(salt), b64(stored.Sum(nil)), b64(mac(salted, "Server Key"))), nil
}

// ParseSCRAM reads a stored credential.
func ParseSCRAM(s string) (SCRAMCredential, error) {
	bad := fmt.Errorf("not a SCRAM credential of the form SCRAM-SHA-256$4096:salt$storedkey:serverkey (make one with `spool passwd --scram`)")
	mech, rest, _ := strings.Cut(s, "$")
	h, known := SCRAMHashes[mech]
	if !known {
		return SCRAMCredential{}, bad
	}
	factors, keys, ok := strings.Cut(rest, "$")
	iters, salt, ok1 := strings.Cut(factors, ":")
	stored, server, ok2 := strings.Cut(keys, ":")
	n, err := strconv.Atoi(iters)
	if !ok || !ok1 || !ok2 || err != nil || n < 4096 {
		return SCRAMCredential{}, bad
	}
	dec := base64.StdEncoding.DecodeString
	saltB, err1 := dec(salt)
	storedB, err2 := dec(stored)
	serverB, err3 := dec(server)
	if err1 != nil || err2 != nil || err3 != nil || len(saltB) == 0 || len(storedB) != h().Size() || len(serverB) != h().Size() {
		return SCRAMCredential{}, bad
	}
	return SCRAMCredential{Mechanism: mech, Salt: saltB, Iterations: n, StoredKey: storedB, ServerKey: serverB}, nil
}
