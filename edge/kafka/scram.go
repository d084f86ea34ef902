package kafka

// The server side of SASL/SCRAM (RFC 5802, RFC 7677), written here rather
// than taken from a library for one reason: librdkafka before 2.6.1 (the
// one Debian bookworm ships) sends its own nonce twice in the
// client-final-message (librdkafka#4895). Kafka up to 3.9 accepted that by
// checking that the nonce ends with the server's; so does Spool, which
// still binds the proof to the server's nonce. Libraries check strictly
// and refuse those clients.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/spoolmq/spool/edge/config"
)

type scramConv struct {
	h      func() hash.Hash
	lookup func(user string) (config.SCRAMCredential, bool)

	step        int
	user        string
	nonce       string // client nonce + server nonce
	gs2         string // the GS2 header the client sent ("n,,")
	first, srv1 string // client-first-message-bare, server-first-message
	cred        config.SCRAMCredential
	done        bool
}

var errSCRAM = errors.New("malformed SCRAM message")

// step takes the client's message and returns the server's answer. done
// reports a successful authentication; an error ends the conversation.
func (c *scramConv) next(msg string) (string, error) {
	switch c.step {
	case 0:
		c.step++
		return c.clientFirst(msg)
	case 1:
		c.step++
		return c.clientFinal(msg)
	}
	return "", errors.New("SCRAM conversation already finished")
}

func (c *scramConv) clientFirst(msg string) (string, error) {
	// gs2-header: "n" or "y" (no channel binding), empty authzid or "a=...".
	cb, rest, ok := strings.Cut(msg, ",")
	if !ok || (cb != "n" && cb != "y") {
		return "", fmt.Errorf("%w: channel binding %q is not supported", errSCRAM, cb)
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok || (authz != "" && !strings.HasPrefix(authz, "a=")) {
		return "", errSCRAM
	}
	c.gs2, c.first = cb+","+authz+",", bare
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") || len(attrs[1]) < 3 {
		return "", errSCRAM
	}
	user, err := decodeSaslName(attrs[0][2:])
	if err != nil {
		return "", err
	}
	c.user = user
	if authz != "" && authz[2:] != user {
		return "", errors.New("authorization identity differs from the user")
	}
	cred, ok := c.lookup(user)
	if !ok {
		return "", errors.New("unknown user or no SCRAM credential for this mechanism")
	}
	c.cred = cred
	c.nonce = attrs[1][2:] + alnumNonce()
	c.srv1 = fmt.Sprintf("r=%s,s=%s,i=%d", c.nonce, base64.StdEncoding.EncodeToString(cred.Salt), cred.Iterations)
	return c.srv1, nil
}

func (c *scramConv) clientFinal(msg string) (string, error) {
	withoutProof, proofAttr, ok := cutLast(msg, ",p=")
	if !ok {
		return "", errSCRAM
	}
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return "", errSCRAM
	}
	if attrs[0][2:] != base64.StdEncoding.EncodeToString([]byte(c.gs2)) {
		return "", errors.New("channel binding differs from the first message")
	}
	// librdkafka < 2.6.1 sends client nonce + (client nonce + server nonce).
	if r := attrs[1][2:]; r != c.nonce && !strings.HasSuffix(r, c.nonce) {
		return "", errors.New("nonce differs from the server's")
	}
	proof, err := base64.StdEncoding.DecodeString(proofAttr)
	if err != nil || len(proof) != c.h().Size() {
		return "", errSCRAM
	}
	auth := c.first + "," + c.srv1 + "," + withoutProof
	mac := func(key []byte) []byte {
		m := hmac.New(c.h, key)
		m.Write([]byte(auth))
		return m.Sum(nil)
	}
	sig := mac(c.cred.StoredKey)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ sig[i]
	}
	stored := c.h()
	stored.Write(clientKey)
	if subtle.ConstantTimeCompare(stored.Sum(nil), c.cred.StoredKey) != 1 {
		return "", errors.New("wrong password")
	}
	c.done = true
	return "v=" + base64.StdEncoding.EncodeToString(mac(c.cred.ServerKey)), nil
}

// cutLast splits s around the last sep.
func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// decodeSaslName undoes RFC 5802's escaping of ',' and '=' in user names.
func decodeSaslName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] != '=':
			b.WriteByte(s[i])
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
			i += 2
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
			i += 2
		default:
			return "", fmt.Errorf("%w: bad escape in user name", errSCRAM)
		}
	}
	return b.String(), nil
}

// alnumNonce is a server nonce of letters and digits, as Kafka makes them.
func alnumNonce() string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}
