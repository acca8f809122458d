package views

import (
	"testing"

	"github.com/lovoo/goka/storage"
)

// recording is a storage that notes the key's counter when it is written.
type recording struct {
	storage.Storage
	c     *Changes
	atSet []uint64
}

func (r *recording) Set(key string, value []byte) error {
	r.atSet = append(r.atSet, r.c.Of(key))
	return r.Storage.Set(key, value)
}

func (r *recording) Delete(key string) error {
	r.atSet = append(r.atSet, r.c.Of(key))
	return r.Storage.Delete(key)
}

// TestTrackNotesAfterStoring: the views' update callback stores the value
// first and advances the key's counter after, so a reader that notes the
// counter before reading can never keep a value past a change it did not
// see (the order the gateway's kept answers rely on); a tombstone deletes.
func TestTrackNotesAfterStoring(t *testing.T) {
	var c Changes
	st := &recording{Storage: storage.NewMemory(), c: &c}
	for i, value := range [][]byte{[]byte("v1"), []byte("v2"), nil} {
		before := c.Of("K")
		if err := c.track(nil, st, "K", value); err != nil {
			t.Fatal(err)
		}
		if st.atSet[i] != before {
			t.Fatalf("update %d: the counter moved before the value was stored", i)
		}
		if c.Of("K") == before {
			t.Fatalf("update %d: the counter did not move", i)
		}
		got, err := st.Get("K")
		if err != nil || string(got) != string(value) {
			t.Fatalf("update %d: stored %q (%v), want %q", i, got, err, value)
		}
	}
	if c.Total() != 3 {
		t.Errorf("Total %d after three updates", c.Total())
	}
}
