package main

import (
	"strings"
	"testing"
	"time"
)

func TestWatchFlags(t *testing.T) {
	for _, c := range [][]string{{"serve", "--help"}, {"dev", "--help"}} {
		out, code := run(t, 30*time.Second, "", c...)
		if code != 0 || !strings.Contains(out, "--max-watchers int") || !strings.Contains(out, "--watch-buffer int") {
			t.Errorf("skuflow %v: exit %d, want --max-watchers and --watch-buffer:\n%s", c, code, out)
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--brokers", "127.0.0.1:1", "--max-watchers", "0"}, "--max-watchers 0: give at least 1"},
		{[]string{"serve", "--brokers", "127.0.0.1:1", "--watch-buffer", "0"}, "--watch-buffer 0: give 1 to 1048576"},
		{[]string{"dev", "--data", t.TempDir(), "--watch-buffer", "2000000"}, "--watch-buffer 2000000: give 1 to 1048576"},
		{[]string{"dev", "--data", t.TempDir(), "--max-watchers", "-3"}, "--max-watchers -3: give at least 1"},
	} {
		out, code := run(t, 30*time.Second, "", tt.args...)
		if code == 0 || !strings.Contains(out, tt.want) {
			t.Errorf("skuflow %v: exit %d, want an error with %q:\n%s", tt.args, code, tt.want, out)
		}
	}
}
