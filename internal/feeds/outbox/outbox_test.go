package outbox_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skuflow/skuflow/internal/feeds/outbox"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

func levels(n int, loc string) []inventory.StockLevel {
	out := make([]inventory.StockLevel, n)
	for i := range out {
		out[i] = inventory.StockLevel{SKU: "SKU-1", Location: loc, OnHand: int64(i), AsOf: time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)}
	}
	return out
}

func readAll(t *testing.T, ob *outbox.Outbox, from uint64) []*pb.OutboxRecord {
	t.Helper()
	rd := ob.NewReader(from)
	defer rd.Close()
	var out []*pb.OutboxRecord
	for {
		recs, err := rd.Read(7)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
	}
}

// TestSequencesSurviveReopenAndSegments: sequences grow across segments and
// reopening; a reader sees every record once, in order.
func TestSequencesSurviveReopenAndSegments(t *testing.T) {
	dir := t.TempDir()
	ob, err := outbox.Open(outbox.Options{Dir: dir, SegmentBytes: 512})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	first, last, err := ob.AppendRows("f1", "M", now, levels(20, "L-1"))
	if err != nil || first != 1 || last != 20 {
		t.Fatalf("append: %d..%d, %v", first, last, err)
	}
	if _, err := ob.End(&pb.FeedStatus{FeedId: "f1", Merchant: "M", State: pb.FeedState_FEED_STATE_COMPLETE}); err != nil {
		t.Fatal(err)
	}
	if _, err := outbox.Open(outbox.Options{Dir: dir}); err == nil {
		t.Fatal("a second Open of the same directory succeeded")
	}
	for range 5 { // several small appends roll segments
		if _, _, err := ob.AppendRows("f2", "M", now, levels(3, "L-2")); err != nil {
			t.Fatal(err)
		}
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	ob, err = outbox.Open(outbox.Options{Dir: dir, SegmentBytes: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	if st := ob.Status(); st.Segments < 2 || st.Last != 36 {
		t.Fatalf("status %+v, want several segments up to 36", st)
	}
	first, _, err = ob.AppendRows("f3", "M", now, levels(1, "L-1"))
	if err != nil || first != 37 {
		t.Fatalf("after reopen: next sequence %d, %v; want 37", first, err)
	}
	recs := readAll(t, ob, 1)
	if len(recs) != 37 {
		t.Fatalf("read %d records, want 37", len(recs))
	}
	for i, r := range recs {
		if r.GetSequence() != uint64(i+1) {
			t.Fatalf("record %d has sequence %d", i, r.GetSequence())
		}
	}
	if f, ok := ob.Feed("f1"); !ok || f.GetAccepted() != 20 || f.GetState() != pb.FeedState_FEED_STATE_COMPLETE || f.GetPublished() {
		t.Fatalf("feed f1 after reopen: %v", f)
	}
	if f, _ := ob.Feed("f2"); f.GetState() != pb.FeedState_FEED_STATE_INTERRUPTED || f.GetAccepted() != 15 {
		t.Fatalf("feed f2 (no end record) after reopen: %v", f)
	}
}

// TestTornTailIsCut: a record half written by a crash (never acknowledged)
// is cut on open; everything before it stays.
func TestTornTailIsCut(t *testing.T) {
	dir := t.TempDir()
	ob, err := outbox.Open(outbox.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ob.AppendRows("f", "M", time.Now(), levels(3, "L")); err != nil {
		t.Fatal(err)
	}
	ob.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	f, err := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 0, 50, 1, 2, 3, 4, 9, 9}) // header of 50 bytes, 2 written
	f.Close()
	ob, err = outbox.Open(outbox.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	if got := readAll(t, ob, 1); len(got) != 3 {
		t.Fatalf("%d records after cutting the torn tail, want 3", len(got))
	}
	if first, _, err := ob.AppendRows("g", "M", time.Now(), levels(1, "L")); err != nil || first != 4 {
		t.Fatalf("append after the cut: %d, %v", first, err)
	}
	if got := readAll(t, ob, 1); len(got) != 4 {
		t.Fatalf("%d records, want 4", len(got))
	}
}

// TestCheckpointRewindAndRetention: commits are durable, a rewind makes the
// generation change, retention removes only published, old segments.
func TestCheckpointRewindAndRetention(t *testing.T) {
	dir := t.TempDir()
	clock := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	ob, err := outbox.Open(outbox.Options{Dir: dir, SegmentBytes: 256, Retention: time.Hour, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, _, err := ob.AppendRows("f", "M", clock.Add(time.Duration(i)*time.Minute), levels(4, "L")); err != nil {
			t.Fatal(err)
		}
	}
	cp, gen := ob.Checkpoint()
	if cp != 0 {
		t.Fatalf("checkpoint %d before any commit", cp)
	}
	if err := ob.Commit(gen, 12); err != nil {
		t.Fatal(err)
	}
	if seq, err := ob.SequenceAt(clock.Add(2 * time.Minute)); err != nil || seq != 9 {
		t.Fatalf("SequenceAt: %d, %v; want 9", seq, err)
	}
	if cp, err := ob.Rewind(5); err != nil || cp != 4 {
		t.Fatalf("rewind: %d, %v", cp, err)
	}
	if err := ob.Commit(gen, 20); err != outbox.ErrRewound {
		t.Fatalf("commit with a stale generation: %v, want ErrRewound", err)
	}
	_, gen = ob.Checkpoint()
	if err := ob.Commit(gen, 12); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * time.Hour)
	n, err := ob.Trim()
	if err != nil || n == 0 {
		t.Fatalf("trim removed %d, %v", n, err)
	}
	st := ob.Status()
	if st.First > 13 || st.Last != 24 {
		t.Fatalf("after trim: %+v; unpublished records (13..24) must stay", st)
	}
	if _, err := ob.Rewind(1); err == nil {
		t.Fatal("rewinding to a sequence removed by retention succeeded")
	}
	ob.Close()
	ob, err = outbox.Open(outbox.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	if cp, _ := ob.Checkpoint(); cp != 12 {
		t.Fatalf("checkpoint after reopen %d, want 12", cp)
	}
}

// TestSequenceAtWithInterleavedFeeds: concurrent feeds interleave, so a
// segment's last record is not its newest. SequenceAt must still find the
// first record received at or after t (review finding: it used the last
// record's time and skipped the segment).
func TestSequenceAtWithInterleavedFeeds(t *testing.T) {
	ob, err := outbox.Open(outbox.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for _, at := range []time.Time{base, base.Add(5 * time.Minute), base} {
		if _, _, err := ob.AppendRows("f", "M", at, levels(1, "L")); err != nil {
			t.Fatal(err)
		}
	}
	if seq, err := ob.SequenceAt(base.Add(3 * time.Minute)); err != nil || seq != 2 {
		t.Fatalf("SequenceAt(10:03) = %d, %v; want 2, the row received at 10:05", seq, err)
	}
}
