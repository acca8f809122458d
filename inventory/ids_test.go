package inventory_test

import (
	"regexp"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/skuflow/skuflow/inventory"
)

// The id checks are loops for speed; these are the rules they implement.
var (
	idRule  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	refRule = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
)

// ValidateID and ValidateRef accept exactly the strings their documented
// patterns match, for strings mixing allowed, disallowed and multi-byte
// characters.
func TestPropertyIDChecksMatchPatterns(t *testing.T) {
	allowed := []rune("aZ09._-:")
	mixed := []rune("aZ09._-:/ \x00é€\U0001F600%+@")
	rapid.Check(t, func(t *rapid.T) {
		chars := rapid.SampledFrom([][]rune{allowed, mixed}).Draw(t, "alphabet")
		n := rapid.IntRange(0, 140).Draw(t, "n")
		var b strings.Builder
		for range n {
			b.WriteRune(rapid.SampledFrom(chars).Draw(t, "c"))
		}
		s := b.String()
		if got, want := inventory.ValidateID("sku", s) == nil, idRule.MatchString(s); got != want {
			t.Fatalf("ValidateID(%q) ok=%v, pattern says %v", s, got, want)
		}
		if got, want := inventory.ValidateRef("order id", s) == nil, refRule.MatchString(s); got != want {
			t.Fatalf("ValidateRef(%q) ok=%v, pattern says %v", s, got, want)
		}
	})
}
