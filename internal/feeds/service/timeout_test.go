package service

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/internal/feeds"
)

// TestTimeoutOf: the wait for the next bytes is the idle timeout until the
// body timeout is nearer, then what is left of the body timeout, and the
// error names the one that runs out (made-up times: no clock involved).
func TestTimeoutOf(t *testing.T) {
	start := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	both := feeds.Limits{IdleTimeout: 30 * time.Second, BodyTimeout: 10 * time.Minute}
	cases := []struct {
		name string
		lim  feeds.Limits
		now  time.Time
		wait time.Duration
		idle bool
		none bool
	}{
		{name: "no timeouts", lim: feeds.Limits{}, now: start.Add(time.Hour), none: true},
		{name: "idle only", lim: feeds.Limits{IdleTimeout: 30 * time.Second}, now: start.Add(time.Hour), wait: 30 * time.Second, idle: true},
		{name: "body only", lim: feeds.Limits{BodyTimeout: 10 * time.Minute}, now: start.Add(time.Minute), wait: 9 * time.Minute},
		{name: "idle nearer", lim: both, now: start.Add(time.Minute), wait: 30 * time.Second, idle: true},
		{name: "body nearer", lim: both, now: start.Add(10*time.Minute - 5*time.Second), wait: 5 * time.Second},
		{name: "body over", lim: both, now: start.Add(11 * time.Minute), wait: 0},
	}
	for _, c := range cases {
		wait, te := timeoutOf(c.lim, start, c.now)
		switch {
		case c.none && te != nil:
			t.Errorf("%s: %v, want no timeout", c.name, te)
		case c.none:
		case te == nil || wait != c.wait || te.Idle != c.idle:
			t.Errorf("%s: wait %s, error %v; want %s, idle %v", c.name, wait, te, c.wait, c.idle)
		}
	}
}

// TestDeadlineBodyWithoutDeadlines: a connection that takes no read
// deadline (here a recorder) is read without the timeouts, not refused as
// the caller's mistake.
func TestDeadlineBodyWithoutDeadlines(t *testing.T) {
	b := &deadlineBody{r: strings.NewReader("sku,location,on_hand\n"), rc: http.NewResponseController(httptest.NewRecorder()),
		lim: feeds.Limits{IdleTimeout: time.Minute, BodyTimeout: time.Hour}, start: time.Now(), log: slog.New(slog.DiscardHandler)}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "sku,location,on_hand\n" {
		t.Fatalf("read %q, %v", got, err)
	}
}
