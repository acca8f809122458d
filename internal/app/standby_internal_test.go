package app

import (
	"testing"

	"github.com/lovoo/goka/storage"
)

// A storage left open by a failed recovery is closed before the same table
// partition is opened again; a storage closed normally is not closed twice.
func TestReclaimingClosesALeakedStorageBeforeReopening(t *testing.T) {
	dir := t.TempDir()
	b := reclaiming(storage.DefaultBuilder(dir))
	leaked, err := b("skuflow-stock-table", 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := leaked.Open(); err != nil {
		t.Fatal(err)
	}
	// Without reclaiming, a second LevelDB open of the same directory
	// fails on its lock.
	if _, err := storage.DefaultBuilder(dir)("skuflow-stock-table", 3); err == nil {
		t.Fatal("a second open of a held LevelDB succeeded: the test shows nothing")
	}
	again, err := b("skuflow-stock-table", 3)
	if err != nil {
		t.Fatalf("reopen after a leak: %v", err)
	}
	if err := again.Set("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// The leaking component may still close what was reclaimed from it:
	// nothing happens (goka's storage panics on a second close).
	if err := leaked.Close(); err != nil {
		t.Fatalf("closing a reclaimed storage: %v", err)
	}
	if err := again.Set("k2", []byte("v2")); err != nil {
		t.Fatalf("the reopened storage after the old one's close: %v", err)
	}
	other, err := b("skuflow-stock-table", 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
	last, err := b("skuflow-stock-table", 3)
	if err != nil {
		t.Fatalf("reopen after a close: %v", err)
	}
	defer last.Close()
	if v, err := last.Get("k"); err != nil || string(v) != "v" {
		t.Errorf("value after reopening: %q, %v", v, err)
	}
}

func TestStandbyOptions(t *testing.T) {
	for _, c := range []struct {
		s    Standby
		want int
	}{{Standby{}, 0}, {Standby{RecoverAhead: true}, 1}, {Standby{Hot: true}, 2}, {Standby{Hot: true, RecoverAhead: true}, 2}} {
		if got := len(c.s.processorOptions()); got != c.want {
			t.Errorf("%+v gives %d goka options, want %d", c.s, got, c.want)
		}
	}
}
