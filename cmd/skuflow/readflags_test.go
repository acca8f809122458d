package main

import (
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/internal/app"
)

func TestReadFlags(t *testing.T) {
	for _, c := range [][]string{{"serve", "--help"}, {"dev", "--help"}} {
		out, code := run(t, 30*time.Second, "", c...)
		for _, flag := range []string{"--batch-limit int", "--cache-max-age duration", "--answer-cache int"} {
			if code != 0 || !strings.Contains(out, flag) {
				t.Errorf("skuflow %v: exit %d, want %s:\n%s", c, code, flag, out)
			}
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--brokers", "127.0.0.1:1", "--batch-limit", "0"}, "--batch-limit 0: give at least 1"},
		{[]string{"serve", "--brokers", "127.0.0.1:1", "--cache-max-age", "-1s"}, "--cache-max-age -1s: give 0 (no-cache) or more"},
		{[]string{"dev", "--data", t.TempDir(), "--answer-cache", "-1"}, "--answer-cache -1: give 0 (keep none) or more"},
	} {
		out, code := run(t, 30*time.Second, "", tt.args...)
		if code == 0 || !strings.Contains(out, tt.want) {
			t.Errorf("skuflow %v: exit %d, want an error with %q:\n%s", tt.args, code, tt.want, out)
		}
	}
	// 0 means "none" on the command line, the gateway's negative.
	var o app.ServeOptions
	readFlags{batchLimit: 7, cacheMaxAge: 0, answerCache: 0}.apply(&o)
	if o.BatchLimit != 7 || o.CacheMaxAge >= 0 || o.AnswerCacheSize >= 0 {
		t.Errorf("apply(0s, 0) = %+v", o)
	}
	readFlags{batchLimit: 1, cacheMaxAge: time.Minute, answerCache: 10}.apply(&o)
	if o.CacheMaxAge != time.Minute || o.AnswerCacheSize != 10 {
		t.Errorf("apply(1m, 10) = %+v", o)
	}
}
