// Package outbox is the durable local log that accepted feed rows are
// written to before a merchant's upload is acknowledged (change data
// capture: the gateway never writes to Kafka and to its own store at once).
//
// Records carry a monotonically increasing sequence, which becomes the
// published stock level's source sequence, so last-writer-wins stays
// correct however often the log is published again. They are appended to
// segment files (<first sequence>.seg), framed by length and CRC-32C and
// fsynced before Append returns. A checkpoint file holds the highest
// sequence the cluster acknowledged; the publisher resumes after it, and
// Rewind moves it back to re-publish from a sequence or a receive time.
// Retention removes whole segments that are fully published and older than
// the retention age (or beyond the byte budget); unpublished records are
// never removed.
//
// On open, a torn tail of the last segment (a crash during an append, which
// was therefore never acknowledged) is cut off; damage anywhere else is an
// error.
//
// This package must not import goka, sarama or gateway/.
package outbox

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// Options configure an outbox.
type Options struct {
	Dir string
	// SegmentBytes is the size at which a new segment is started (default
	// 64 MiB).
	SegmentBytes int64
	// Retention removes fully published segments whose newest record is
	// older than this (0: keep them).
	Retention time.Duration
	// RetentionBytes removes the oldest fully published segments while the
	// outbox is larger than this (0: no bound).
	RetentionBytes int64
	// Now is the clock retention is measured with (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("outbox: directory is empty"))
	}
	if o.SegmentBytes < 0 {
		errs = append(errs, fmt.Errorf("outbox: segment bytes %d is negative", o.SegmentBytes))
	}
	if o.Retention < 0 {
		errs = append(errs, fmt.Errorf("outbox: retention %s is negative", o.Retention))
	}
	if o.RetentionBytes < 0 {
		errs = append(errs, fmt.Errorf("outbox: retention bytes %d is negative", o.RetentionBytes))
	}
	return errors.Join(errs...)
}

// Errors.
var (
	ErrClosed    = errors.New("outbox is closed")
	ErrRewound   = errors.New("outbox checkpoint was rewound")
	ErrRetention = errors.New("records were removed by retention")
	ErrCorrupt   = errors.New("outbox segment is damaged")
)

const (
	headerLen    = 8 // uint32 length, uint32 CRC-32C of the payload
	maxRecordLen = 16 << 20
	segSuffix    = ".seg"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type segment struct {
	first, last uint64 // last == first-1 when empty
	path        string
	size        int64 // durable bytes
	newest      time.Time
}

type feedIndex struct {
	status *pb.FeedStatus
	ended  bool
	endSeq uint64
	locs   map[string]struct{}
}

// LocationFeed is the last feed seen for a merchant's location.
type LocationFeed struct {
	At     time.Time
	FeedID string
}

// Outbox is an open outbox directory.
type Outbox struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time

	mu         sync.Mutex
	segs       []*segment
	active     *os.File
	next       uint64
	checkpoint uint64
	gen        uint64
	notify     chan struct{}
	feeds      map[string]*feedIndex
	locations  map[string]map[string]LocationFeed // merchant -> location
	closed     bool
	buf        []byte
	lock       *os.File
}

// Open opens (creating if needed) the outbox in o.Dir and recovers its
// index from the segments.
func Open(o Options) (*Outbox, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = 64 << 20
	}
	ob := &Outbox{opts: o, log: o.Logger, now: o.Now, notify: make(chan struct{}),
		feeds: map[string]*feedIndex{}, locations: map[string]map[string]LocationFeed{}, next: 1}
	if ob.log == nil {
		ob.log = slog.New(slog.DiscardHandler)
	}
	if ob.now == nil {
		ob.now = time.Now
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(o.Dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("outbox: %s is in use by another process (a running gateway? use its admin API)", o.Dir)
	}
	ob.lock = lock
	opened := false
	defer func() {
		if !opened {
			lock.Close()
		}
	}()
	cp, err := readCheckpoint(o.Dir)
	if err != nil {
		return nil, err
	}
	ob.checkpoint = cp
	names, err := filepath.Glob(filepath.Join(o.Dir, "*"+segSuffix))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for i, name := range names {
		first, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), segSuffix), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("outbox: unexpected file %s", name)
		}
		seg := &segment{first: first, last: first - 1, path: name}
		if err := ob.recover(seg, i == len(names)-1); err != nil {
			return nil, err
		}
		ob.segs = append(ob.segs, seg)
		if seg.last >= ob.next {
			ob.next = seg.last + 1
		}
		if seg.first > ob.next {
			ob.next = seg.first
		}
	}
	if ob.checkpoint >= ob.next {
		ob.next = ob.checkpoint + 1
	}
	for _, f := range ob.feeds {
		if !f.ended {
			f.status.State = pb.FeedState_FEED_STATE_INTERRUPTED
			f.status.Error = "the gateway stopped while receiving this feed; the rows stored before the stop are published"
		}
	}
	if len(ob.segs) > 0 {
		last := ob.segs[len(ob.segs)-1]
		if ob.active, err = os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0o640); err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
	}
	opened = true
	ob.log.Info("outbox opened", "dir", o.Dir, "segments", len(ob.segs), "next_sequence", ob.next, "checkpoint", ob.checkpoint)
	return ob, nil
}

// recover scans a segment, indexing its records. A torn tail of the last
// segment is truncated.
func (ob *Outbox) recover(seg *segment, last bool) error {
	f, err := os.Open(seg.path)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var off int64
	var scratch []byte
	for {
		rec, n, err := readRecord(br, &scratch)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if !last {
				return fmt.Errorf("%w: %s at offset %d: %v", ErrCorrupt, seg.path, off, err)
			}
			ob.log.Warn("outbox: cutting a torn tail left by a crash (it was never acknowledged)", "segment", seg.path, "offset", off, "reason", err)
			if err := os.Truncate(seg.path, off); err != nil {
				return fmt.Errorf("outbox: truncate torn tail: %w", err)
			}
			break
		}
		off += n
		seg.last = rec.GetSequence()
		// Concurrent feeds interleave, so receive times are not in order:
		// keep the segment's newest, not its last.
		if at := rec.GetReceivedAt().AsTime(); at.After(seg.newest) {
			seg.newest = at
		}
		ob.index(rec)
	}
	seg.size = off
	return nil
}

func readRecord(br *bufio.Reader, scratch *[]byte) (*pb.OutboxRecord, int64, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, 0, io.EOF
		}
		return nil, 0, fmt.Errorf("short header: %w", err)
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n == 0 || n > maxRecordLen {
		return nil, 0, fmt.Errorf("record length %d is impossible", n)
	}
	if cap(*scratch) < int(n) {
		*scratch = make([]byte, n)
	}
	b := (*scratch)[:n]
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, 0, fmt.Errorf("short record: %w", err)
	}
	if crc32.Checksum(b, crcTable) != binary.BigEndian.Uint32(h[4:]) {
		return nil, 0, errors.New("checksum mismatch")
	}
	rec := new(pb.OutboxRecord)
	if err := proto.Unmarshal(b, rec); err != nil {
		return nil, 0, fmt.Errorf("record does not decode: %w", err)
	}
	return rec, int64(headerLen + n), nil
}

// index adds a record to the in-memory feed and location index.
func (ob *Outbox) index(rec *pb.OutboxRecord) {
	id := rec.GetFeedId()
	f := ob.feeds[id]
	if f == nil {
		f = &feedIndex{status: &pb.FeedStatus{FeedId: id, Merchant: rec.GetMerchant(), ReceivedAt: rec.GetReceivedAt(),
			State: pb.FeedState_FEED_STATE_RECEIVING}, locs: map[string]struct{}{}}
		ob.feeds[id] = f
	}
	switch b := rec.GetBody().(type) {
	case *pb.OutboxRecord_StockLevel:
		s := f.status
		if s.FirstSequence == 0 {
			s.FirstSequence = rec.GetSequence()
		}
		s.LastSequence = rec.GetSequence()
		s.Accepted++
		loc := b.StockLevel.GetLocation()
		if _, seen := f.locs[loc]; !seen {
			f.locs[loc] = struct{}{}
			s.Locations = append(s.Locations, loc)
		}
		m := ob.locations[rec.GetMerchant()]
		if m == nil {
			m = map[string]LocationFeed{}
			ob.locations[rec.GetMerchant()] = m
		}
		at := rec.GetReceivedAt().AsTime()
		if cur, ok := m[loc]; !ok || !cur.At.After(at) {
			m[loc] = LocationFeed{At: at, FeedID: id}
		}
	case *pb.OutboxRecord_FeedEnd:
		end := proto.Clone(b.FeedEnd).(*pb.FeedStatus)
		end.FirstSequence, end.LastSequence, end.Accepted, end.Locations = f.status.FirstSequence, f.status.LastSequence, f.status.Accepted, f.status.Locations
		f.status = end
		f.ended = true
		f.endSeq = rec.GetSequence()
	}
}

// Begin registers a feed that is being received, so its status can be read
// before its first rows are stored.
func (ob *Outbox) Begin(feedID, merchant string, receivedAt time.Time) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if _, ok := ob.feeds[feedID]; !ok {
		ob.feeds[feedID] = &feedIndex{status: &pb.FeedStatus{FeedId: feedID, Merchant: merchant, ReceivedAt: timestamppb.New(receivedAt),
			State: pb.FeedState_FEED_STATE_RECEIVING}, locs: map[string]struct{}{}}
	}
}

// AppendRows stores levels durably (fsync) as one feed's rows, each with
// the next sequence (written into the level's Sequence), and returns the
// first and last sequences.
func (ob *Outbox) AppendRows(feedID, merchant string, receivedAt time.Time, levels []inventory.StockLevel) (uint64, uint64, error) {
	if len(levels) == 0 {
		return 0, 0, nil
	}
	recs := make([]*pb.OutboxRecord, len(levels))
	ts := timestamppb.New(receivedAt)
	for i, l := range levels {
		recs[i] = &pb.OutboxRecord{ReceivedAt: ts, FeedId: feedID, Merchant: merchant, Body: &pb.OutboxRecord_StockLevel{StockLevel: &pb.StockLevel{
			Sku: l.SKU, Location: l.Location, OnHand: l.OnHand, AsOf: timestamppb.New(l.AsOf), Area: l.Area,
		}}}
	}
	first, last, err := ob.append(recs)
	if err != nil {
		return 0, 0, err
	}
	for i := range levels {
		levels[i].Sequence = first + uint64(i)
	}
	return first, last, nil
}

// End stores the feed's final status durably; the rows stored before it
// stay stored whatever the state.
func (ob *Outbox) End(st *pb.FeedStatus) (uint64, error) {
	end := proto.Clone(st).(*pb.FeedStatus)
	end.Published = false
	_, seq, err := ob.append([]*pb.OutboxRecord{{ReceivedAt: st.GetReceivedAt(), FeedId: st.GetFeedId(), Merchant: st.GetMerchant(),
		Body: &pb.OutboxRecord_FeedEnd{FeedEnd: end}}})
	return seq, err
}

func (ob *Outbox) append(recs []*pb.OutboxRecord) (uint64, uint64, error) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.closed {
		return 0, 0, ErrClosed
	}
	if ob.active == nil || ob.segs[len(ob.segs)-1].size >= ob.opts.SegmentBytes {
		if err := ob.roll(); err != nil {
			return 0, 0, err
		}
	}
	first := ob.next
	buf := ob.buf[:0]
	for i, r := range recs {
		r.Sequence = first + uint64(i)
		start := len(buf)
		buf = append(buf, make([]byte, headerLen)...)
		var err error
		buf, err = proto.MarshalOptions{Deterministic: true}.MarshalAppend(buf, r)
		if err != nil {
			return 0, 0, fmt.Errorf("outbox: encode record: %w", err)
		}
		payload := buf[start+headerLen:]
		binary.BigEndian.PutUint32(buf[start:], uint32(len(payload)))
		binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, crcTable))
	}
	ob.buf = buf
	seg := ob.segs[len(ob.segs)-1]
	if _, err := ob.active.Write(buf); err != nil {
		// A partial write leaves a torn tail: cut it so later appends stay
		// readable, then report the failure (nothing was acknowledged).
		_ = ob.active.Truncate(seg.size)
		return 0, 0, fmt.Errorf("outbox: write: %w", err)
	}
	if err := ob.active.Sync(); err != nil {
		// Not acknowledged: remove the bytes, or the next append would
		// reuse these sequence numbers after them.
		_ = ob.active.Truncate(seg.size)
		return 0, 0, fmt.Errorf("outbox: fsync: %w", err)
	}
	last := first + uint64(len(recs)) - 1
	seg.size += int64(len(buf))
	seg.last = last
	for _, r := range recs {
		if at := r.GetReceivedAt().AsTime(); at.After(seg.newest) {
			seg.newest = at
		}
	}
	ob.next = last + 1
	for _, r := range recs {
		ob.index(r)
	}
	ob.wake()
	return first, last, nil
}

// roll starts a new segment at the next sequence.
func (ob *Outbox) roll() error {
	if ob.active != nil {
		if err := ob.active.Close(); err != nil {
			return fmt.Errorf("outbox: close segment: %w", err)
		}
		ob.active = nil
	}
	path := filepath.Join(ob.opts.Dir, fmt.Sprintf("%020d%s", ob.next, segSuffix))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("outbox: new segment: %w", err)
	}
	if err := syncDir(ob.opts.Dir); err != nil {
		f.Close()
		return err
	}
	ob.active = f
	ob.segs = append(ob.segs, &segment{first: ob.next, last: ob.next - 1, path: path})
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("outbox: fsync directory: %w", err)
	}
	return nil
}

// wake tells waiting readers that something changed. Call with mu held.
func (ob *Outbox) wake() {
	close(ob.notify)
	ob.notify = make(chan struct{})
}

// Changed returns a channel closed at the next append or rewind.
func (ob *Outbox) Changed() <-chan struct{} {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return ob.notify
}

// Checkpoint returns the highest acknowledged sequence and the rewind
// generation it belongs to.
func (ob *Outbox) Checkpoint() (seq, gen uint64) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return ob.checkpoint, ob.gen
}

// Commit durably records that every record up to seq was acknowledged. It
// returns ErrRewound if the checkpoint was rewound since gen was read.
func (ob *Outbox) Commit(gen, seq uint64) error {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if gen != ob.gen {
		return ErrRewound
	}
	if seq <= ob.checkpoint {
		return nil
	}
	if err := writeCheckpoint(ob.opts.Dir, seq); err != nil {
		return err
	}
	ob.checkpoint = seq
	return nil
}

// Rewind moves the checkpoint back so that records from seq on are
// published again. It returns the new checkpoint.
func (ob *Outbox) Rewind(seq uint64) (uint64, error) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if seq == 0 {
		seq = 1
	}
	if len(ob.segs) > 0 && seq < ob.segs[0].first && ob.segs[0].first > 1 {
		return ob.checkpoint, fmt.Errorf("%w: the outbox holds sequences from %d on, %d is gone", ErrRetention, ob.segs[0].first, seq)
	}
	if seq-1 >= ob.checkpoint {
		return ob.checkpoint, nil // nothing published from there yet
	}
	if err := writeCheckpoint(ob.opts.Dir, seq-1); err != nil {
		return ob.checkpoint, err
	}
	ob.log.Info("outbox checkpoint rewound", "from", ob.checkpoint, "to", seq-1)
	ob.checkpoint = seq - 1
	ob.gen++
	ob.wake()
	return ob.checkpoint, nil
}

// SequenceAt returns the sequence of the first record received at or after
// t (the next sequence if there is none).
func (ob *Outbox) SequenceAt(t time.Time) (uint64, error) {
	ob.mu.Lock()
	segs := slices.Clone(ob.segs)
	next := ob.next
	var sizes []int64
	for _, s := range segs {
		sizes = append(sizes, s.size)
	}
	ob.mu.Unlock()
	for i, s := range segs {
		if s.last < s.first || s.newest.Before(t) {
			continue
		}
		var found uint64
		err := scan(s.path, sizes[i], func(r *pb.OutboxRecord) bool {
			if !r.GetReceivedAt().AsTime().Before(t) {
				found = r.GetSequence()
				return false
			}
			return true
		})
		if err != nil {
			return 0, err
		}
		if found > 0 {
			return found, nil
		}
	}
	return next, nil
}

func scan(path string, size int64, fn func(*pb.OutboxRecord) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(io.LimitReader(f, size), 1<<20)
	var scratch []byte
	for {
		rec, _, err := readRecord(br, &scratch)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
		}
		if !fn(rec) {
			return nil
		}
	}
}

// Feed returns a copy of a feed's status, with Published set when every
// record of it is at or below the checkpoint.
func (ob *Outbox) Feed(feedID string) (*pb.FeedStatus, bool) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	f, ok := ob.feeds[feedID]
	if !ok {
		return nil, false
	}
	st := proto.Clone(f.status).(*pb.FeedStatus)
	switch {
	case f.ended:
		st.Published = ob.checkpoint >= f.endSeq
	case st.State == pb.FeedState_FEED_STATE_INTERRUPTED:
		st.Published = ob.checkpoint >= st.LastSequence
	}
	return st, true
}

// Locations returns the last feed seen by this outbox for each of the
// merchant's locations.
func (ob *Outbox) Locations(merchant string) map[string]LocationFeed {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	out := map[string]LocationFeed{}
	for l, f := range ob.locations[merchant] {
		out[l] = f
	}
	return out
}

// Status describes the outbox.
type Status struct {
	First, Last, Checkpoint uint64
	Bytes                   int64
	Segments                int
	Oldest                  time.Time
}

// Status returns what the outbox holds.
func (ob *Outbox) Status() Status {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	st := Status{Last: ob.next - 1, Checkpoint: ob.checkpoint, Segments: len(ob.segs), First: ob.next}
	for i, s := range ob.segs {
		st.Bytes += s.size
		if i == 0 {
			st.First = s.first
		}
	}
	return st
}

// Trim applies retention: it removes fully published segments (never the
// one being written) older than the retention age, then the oldest ones
// while the outbox is larger than the byte budget. It returns how many
// segments it removed.
func (ob *Outbox) Trim() (int, error) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	var total int64
	for _, s := range ob.segs {
		total += s.size
	}
	now := ob.now()
	removed := 0
	for len(ob.segs) > 1 {
		s := ob.segs[0]
		if s.last > ob.checkpoint {
			break
		}
		old := ob.opts.Retention > 0 && now.Sub(s.newest) > ob.opts.Retention
		big := ob.opts.RetentionBytes > 0 && total > ob.opts.RetentionBytes
		if !old && !big {
			break
		}
		if err := os.Remove(s.path); err != nil {
			return removed, fmt.Errorf("outbox: retention: %w", err)
		}
		total -= s.size
		ob.segs = ob.segs[1:]
		removed++
		ob.log.Info("outbox: retention removed a published segment", "segment", filepath.Base(s.path), "last_sequence", s.last)
	}
	if removed > 0 {
		first := ob.segs[0].first
		for id, f := range ob.feeds {
			if f.status.LastSequence < first && (!f.ended || f.endSeq < first) {
				delete(ob.feeds, id)
			}
		}
	}
	return removed, nil
}

// Close stops appends and closes the active segment.
func (ob *Outbox) Close() error {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.closed {
		return nil
	}
	ob.closed = true
	ob.wake()
	var err error
	if ob.active != nil {
		err = ob.active.Close()
	}
	return errors.Join(err, ob.lock.Close())
}

const checkpointFile = "checkpoint"

func readCheckpoint(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, checkpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("outbox: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("outbox: checkpoint file %q is not a sequence", strings.TrimSpace(string(b)))
	}
	return n, nil
}

func writeCheckpoint(dir string, seq uint64) error {
	tmp := filepath.Join(dir, checkpointFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("outbox: checkpoint: %w", err)
	}
	_, err = fmt.Fprintf(f, "%d\n", seq)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, checkpointFile))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("outbox: checkpoint: %w", err)
	}
	return nil
}

// RewindDir rewinds the checkpoint of an outbox directory that no gateway
// has open (offline `skuflow feed republish --outbox DIR`). since is a
// sequence or, when bySeq is false, a receive time.
func RewindDir(dir string, seq uint64, at time.Time, bySeq bool) (uint64, error) {
	ob, err := Open(Options{Dir: dir})
	if err != nil {
		return 0, err
	}
	defer ob.Close()
	if !bySeq {
		if seq, err = ob.SequenceAt(at); err != nil {
			return 0, err
		}
	}
	return ob.Rewind(seq)
}
