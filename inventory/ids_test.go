package inventory_test

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"pgregory.net/rapid"

	"github.com/skuflow/skuflow/inventory"
)

// The id checks are loops for speed; these are the rules they implement.
var (
	idRule  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	refRule = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	// skuRule is the SKU rule's character part: printable characters
	// (unicode.IsPrint: categories L, M, N, P, S and the ASCII space), not
	// starting or ending with a space. The rest of the rule is not a
	// regexp's to say: at most inventory.MaxSKULength bytes, and valid
	// UTF-8 (Go's regexp reads an invalid byte as U+FFFD, a symbol).
	skuRule = regexp.MustCompile(`^[\pL\pM\pN\pP\pS](?:[\pL\pM\pN\pP\pS ]*[\pL\pM\pN\pP\pS])?$`)
)

func skuPattern(s string) bool {
	return len(s) <= inventory.MaxSKULength && utf8.ValidString(s) && skuRule.MatchString(s)
}

// ValidateID, ValidateSKU and ValidateRef accept exactly the strings their
// documented patterns match, for strings mixing allowed, disallowed,
// multi-byte and invalid characters; ValidateID("sku", s) is ValidateSKU.
func TestPropertyIDChecksMatchPatterns(t *testing.T) {
	allowed := []string{"a", "Z", "0", "9", ".", "_", "-", ":"}
	mixed := []string{"a", "Z", "0", ".", "_", "-", ":", "/", " ", "%", "+", "@", "\"", ",", "#", "?",
		"é", "Ä", "€", "\U0001F600", "\u0301", // combining acute accent (a mark)
		"\x00", "\t", "\n", "\x7f", "\u0085", // controls, C0, DEL and C1
		"\u00a0", "\u2003", "\u2028", // other spaces and separators
		"\u200b", "\u202e", "\ufeff", // format characters: zero width, bidi override, BOM
		"\ue000", "\U000E0001", "\U0010FFFF", // private use, a tag, a noncharacter
		"\ufffd", "\xff", "\xc3", "\xed\xa0\x80", // U+FFFD itself, and invalid UTF-8
	}
	rapid.Check(t, func(t *rapid.T) {
		chars := rapid.SampledFrom([][]string{allowed, mixed}).Draw(t, "alphabet")
		n := rapid.IntRange(0, 140).Draw(t, "n")
		var b strings.Builder
		for range n {
			b.WriteString(rapid.SampledFrom(chars).Draw(t, "c"))
		}
		s := b.String()
		if rapid.Bool().Draw(t, "near the sku limit") {
			s = strings.Repeat("x", rapid.IntRange(inventory.MaxSKULength-n-2, inventory.MaxSKULength-n+2).Draw(t, "pad")) + s
		}
		if got, want := inventory.ValidateID("location", s) == nil, idRule.MatchString(s); got != want {
			t.Fatalf("ValidateID(location, %q) ok=%v, pattern says %v", s, got, want)
		}
		if got, want := inventory.ValidateSKU("sku", s) == nil, skuPattern(s); got != want {
			t.Fatalf("ValidateSKU(%q) = %v, pattern says ok=%v", s, inventory.ValidateSKU("sku", s), want)
		}
		if got, want := inventory.ValidateID(inventory.KindSKU, s) == nil, skuPattern(s); got != want {
			t.Fatalf("ValidateID(sku, %q) ok=%v, pattern says %v", s, got, want)
		}
		if got, want := inventory.ValidateRef("order id", s) == nil, refRule.MatchString(s); got != want {
			t.Fatalf("ValidateRef(%q) ok=%v, pattern says %v", s, got, want)
		}
	})
}

// Catalogue SKUs the rule accepts, and SKUs it rejects with the part of
// the rule the error must name; shared by the events' and commands' tests.
var (
	goodSKUs = []string{
		"SKU-1", "a", "A/B", "A//B", "/", "..", "Ä-Öl 5/8\" +%", "caf\u00e9", "cafe\u0301", "x:y", "a b",
		"100%", "a+b", "a,b", "#1", "?", "品番-001", "🙂", strings.Repeat("s", inventory.MaxSKULength),
		strings.Repeat("é", inventory.MaxSKULength/2),
	}
	badSKUs = map[string]struct{ sku, words string }{
		"empty":                  {"", "sku is empty"},
		"too long":               {strings.Repeat("s", inventory.MaxSKULength+1), "longer than 256"},
		"too long in bytes":      {strings.Repeat("é", inventory.MaxSKULength/2) + "s", "longer than 256"},
		"control character":      {"a\x01b", "control character"},
		"newline":                {"a\nb", "control character"},
		"tab":                    {"a\tb", "control character"},
		"DEL":                    {"a\x7fb", "control character"},
		"C1 control":             {"a\u0085b", "not printable"},
		"invalid UTF-8":          {"a\xffb", "not valid UTF-8"},
		"a lone surrogate":       {"a\xed\xa0\x80", "not valid UTF-8"},
		"leading space":          {" SKU-1", "starts or ends with a space"},
		"trailing space":         {"SKU-1 ", "starts or ends with a space"},
		"no-break space":         {"a\u00a0b", "not printable"},
		"zero width space":       {"a\u200bb", "not printable"},
		"bidi override":          {"a\u202eb", "not printable"},
		"byte order mark":        {"\ufeffSKU-1", "not printable"},
		"private use":            {"a\ue000", "not printable"},
		"only a space":           {" ", "starts or ends with a space"},
		"ends with a line break": {"SKU-1\r\n", "control character"},
	}
)

// skuBreaks is idBreaks for a SKU field: the SKU rule's boundaries.
func skuBreaks[V any](field string, set func(*V, string)) []dmBreak[V] {
	var out []dmBreak[V]
	for _, s := range goodSKUs {
		out = append(out, dmBreak[V]{name: field + " " + s, set: func(v *V) { set(v, s) }, ok: true})
	}
	for name, b := range badSKUs {
		out = append(out, dmBreak[V]{name: field + " " + name, set: func(v *V) { set(v, b.sku) }, words: field})
	}
	return out
}

func TestValidateSKU(t *testing.T) {
	for _, s := range goodSKUs {
		if err := inventory.ValidateSKU("sku", s); err != nil {
			t.Errorf("ValidateSKU(%q) = %v, want nil", s, err)
		}
	}
	for name, b := range badSKUs {
		err := inventory.ValidateSKU("line 2: sku", b.sku)
		if err == nil {
			t.Errorf("%s: ValidateSKU(%q) = nil, want an error", name, b.sku)
			continue
		}
		// The error names the field, what is wrong, and the whole rule.
		for _, w := range []string{"line 2: sku", b.words, inventory.SKURule} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: ValidateSKU(%q) = %q, want it to contain %q", name, b.sku, err, w)
			}
		}
		if !utf8.ValidString(err.Error()) {
			t.Errorf("%s: the error %q is not valid UTF-8", name, err)
		}
	}
	// The rule as stated matches the limit in force.
	if !strings.Contains(inventory.SKURule, "1 to 256 bytes") || inventory.MaxSKULength != 256 {
		t.Errorf("SKURule %q does not state MaxSKULength %d", inventory.SKURule, inventory.MaxSKULength)
	}
}

// Locations, channels and merchants keep the narrow id rule.
func TestOtherIDsKeepTheNarrowRule(t *testing.T) {
	for _, kind := range []string{"location", "channel", "merchant", "merchant_id"} {
		for _, id := range []string{"A/B", "a b", "caf\u00e9", "x:y", strings.Repeat("a", inventory.MaxIDLength+1)} {
			if inventory.ValidateID(kind, id) == nil {
				t.Errorf("ValidateID(%s, %q) = nil, want the narrow rule's error", kind, id)
			}
		}
	}
}

func BenchmarkValidateSKU(b *testing.B) {
	for _, s := range []string{"SKU-000123", "Ä-Öl 5/8\" +% Größe XL"} {
		b.Run(s, func(b *testing.B) {
			for b.Loop() {
				if inventory.ValidateSKU("sku", s) != nil {
					b.Fatal("rejected")
				}
			}
		})
	}
}
