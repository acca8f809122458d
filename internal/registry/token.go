package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strings"
)

// tokenPrefix marks skuflow merchant tokens (version 1).
const tokenPrefix = "skf1."

// secretBytes of randomness per token.
const secretBytes = 32

// Authentication errors. Their messages never contain the token.
var (
	// ErrUnauthenticated: no token, a malformed one, or one that matches no
	// stored hash.
	ErrUnauthenticated = errors.New("missing or invalid API token")
	// ErrPermissionDenied: a valid token used where it gives no right.
	ErrPermissionDenied = errors.New("this token may not do that")
)

// NewToken returns a fresh token for merchant and the hash to store.
func NewToken(merchant string) (token string, hash []byte, err error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, errors.New("registry: no randomness for a token")
	}
	secret := base64.RawURLEncoding.EncodeToString(b)
	return tokenPrefix + merchant + "." + secret, HashSecret(secret), nil
}

// ParseToken splits a token into its merchant and secret parts.
func ParseToken(token string) (merchant, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, tokenPrefix)
	if !found {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// HashSecret is what is stored for a token's secret.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// matches reports whether secret hashes to one of hashes, comparing every
// stored hash in constant time.
func matches(hashes [][]byte, secret string) bool {
	h := HashSecret(secret)
	ok := 0
	for _, s := range hashes {
		ok |= subtle.ConstantTimeCompare(s, h)
	}
	return ok == 1
}

// BearerToken extracts the token from an Authorization header value
// ("Bearer <token>", scheme case-insensitive); "" if there is none.
func BearerToken(header string) string {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// Admin checks tokens against the admin token's hash.
type Admin struct{ hash []byte }

// NewAdmin keeps only the hash of token; an empty token disables admin
// access.
func NewAdmin(token string) Admin {
	token = strings.TrimSpace(token)
	if token == "" {
		return Admin{}
	}
	return Admin{hash: HashSecret(token)}
}

// Enabled reports whether an admin token is configured.
func (a Admin) Enabled() bool { return a.hash != nil }

// Check reports whether token is the admin token.
func (a Admin) Check(token string) bool {
	if a.hash == nil || token == "" {
		return false
	}
	return subtle.ConstantTimeCompare(a.hash, HashSecret(token)) == 1
}
