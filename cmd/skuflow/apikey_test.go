package main

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/internal/registry"
)

// 'apikey new' prints the key once (stderr) and its file line (stdout); the
// line holds the hash of the key's secret, never the key.
func TestAPIKeyNew(t *testing.T) {
	var out, info bytes.Buffer
	if err := runAPIKeyNew(&out, &info, "storefront", "read,order", 50, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := gateway.ParseAPIKeys(out.Bytes())
	if err != nil || len(keys) != 1 {
		t.Fatalf("the printed line %q does not parse: %v", out.String(), err)
	}
	k := keys[0]
	if k.ID != "storefront" || strings.Join(k.Scopes, ",") != "read,order" || k.Rate != 50 {
		t.Errorf("line %q: %+v", out.String(), k)
	}
	var key string
	for f := range strings.FieldsSeq(info.String()) {
		if strings.HasPrefix(f, "ska1.storefront.") {
			key = f
			break
		}
	}
	secret := strings.TrimPrefix(key, "ska1.storefront.")
	if key == "" || hex.EncodeToString(registry.HashSecret(secret)) != hex.EncodeToString(k.Hash) {
		t.Fatalf("the key printed (%q) does not hash to the line's hash:\n%s", key, info.String())
	}
	if strings.Contains(out.String(), secret) {
		t.Errorf("the file line holds the secret: %q", out.String())
	}

	// --out: the line goes to the file, the key alone to stdout.
	file := filepath.Join(t.TempDir(), "api-keys")
	out.Reset()
	for _, id := range []string{"a", "b"} {
		if err := runAPIKeyNew(&out, &info, id, "read", 0, file); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := gateway.ParseAPIKeys(data); err != nil || len(keys) != 2 {
		t.Errorf("--out file %q: %v", data, err)
	}
	if lines := strings.Fields(out.String()); len(lines) != 2 || !strings.HasPrefix(lines[0], "ska1.a.") || !strings.HasPrefix(lines[1], "ska1.b.") {
		t.Errorf("--out printed %q, want the two keys", out.String())
	}
	// An id already in the file is refused: the file keeps one line per id.
	if err := runAPIKeyNew(&out, &info, "a", "read", 0, file); err == nil || !strings.Contains(err.Error(), `already has a key with id "a"`) {
		t.Errorf("a second key with id a: %v, want refused", err)
	}
	if again, _ := os.ReadFile(file); string(again) != string(data) {
		t.Errorf("a refused key changed the file: %q", again)
	}
	// Also when the id's line does not parse.
	if err := os.WriteFile(file, append(data, "c read sha256:bad\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runAPIKeyNew(&out, &info, "c", "read", 0, file); err == nil || !strings.Contains(err.Error(), `already has a key with id "c"`) {
		t.Errorf("a key with the id of a bad line: %v, want refused", err)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"apikey", "new", "--id", "k1", "--scopes", "admin"}, `unknown scope "admin"`},
		{[]string{"apikey", "new", "--id", "k 1", "--scopes", "read"}, `key id "k 1" is not`},
		{[]string{"apikey", "new", "--scopes", "read"}, `required flag(s) "id" not set`},
		{[]string{"serve", "--brokers", "127.0.0.1:1", "--max-request-bytes", "0"}, "--max-request-bytes 0: give at least 1"},
		{[]string{"dev", "--data", t.TempDir(), "--idle-timeout", "0s"}, "--idle-timeout 0s: give more than 0"},
		{[]string{"dev", "--data", t.TempDir(), "--body-read-timeout", "-1s"}, "--body-read-timeout -1s: give more than 0"},
	} {
		out, code := run(t, 30*time.Second, "", tt.args...)
		if code == 0 || !strings.Contains(out, tt.want) {
			t.Errorf("skuflow %v: exit %d, want an error with %q:\n%s", tt.args, code, tt.want, out)
		}
	}
	for _, c := range [][]string{{"serve", "--help"}, {"dev", "--help"}} {
		out, _ := run(t, 30*time.Second, "", c...)
		for _, flag := range []string{"--api-keys string", "--max-request-bytes int", "--read-header-timeout duration", "--body-read-timeout duration", "--idle-timeout duration"} {
			if !strings.Contains(out, flag) {
				t.Errorf("skuflow %v: no %s", c, flag)
			}
		}
	}
}
