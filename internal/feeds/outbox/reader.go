package outbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// Reader reads records in sequence order from a starting sequence, up to
// what has been made durable.
type Reader struct {
	ob      *Outbox
	next    uint64 // the next sequence wanted
	seg     *segment
	f       *os.File
	br      *bufio.Reader
	off     int64
	scratch []byte
}

// NewReader reads records with sequence >= from.
func (ob *Outbox) NewReader(from uint64) *Reader {
	return &Reader{ob: ob, next: max(from, 1)}
}

// Close releases the open segment.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f, r.br, r.seg = nil, nil, nil
	return err
}

// locate returns the segment holding r.next (or the first after it) and its
// durable size, and whether it is the last segment.
func (r *Reader) locate() (*segment, int64, bool, error) {
	ob := r.ob
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.closed {
		return nil, 0, false, ErrClosed
	}
	if len(ob.segs) == 0 {
		return nil, 0, true, nil
	}
	if r.next < ob.segs[0].first {
		if ob.segs[0].first > 1 && r.next < ob.segs[0].first {
			// Retention removed what was wanted: go on from what is left.
			r.next = ob.segs[0].first
		}
	}
	for i, s := range ob.segs {
		last := i == len(ob.segs)-1
		if r.next <= s.last || last {
			return s, s.size, last, nil
		}
	}
	return nil, 0, true, nil
}

// Read returns up to max records (sequence >= the reader's position),
// without waiting; none when it has caught up.
func (r *Reader) Read(max int) ([]*pb.OutboxRecord, error) {
	var out []*pb.OutboxRecord
	for len(out) < max {
		seg, size, last, err := r.locate()
		if err != nil {
			return out, err
		}
		if seg == nil {
			return out, nil
		}
		if r.seg != seg {
			r.Close()
			f, err := os.Open(seg.path)
			if err != nil {
				return out, fmt.Errorf("outbox: %w", err)
			}
			r.seg, r.f, r.off = seg, f, 0
			r.br = bufio.NewReaderSize(f, 1<<20)
		}
		for len(out) < max && r.off < size {
			rec, n, err := readRecord(r.br, &r.scratch)
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return out, fmt.Errorf("%w: %s at offset %d: %v", ErrCorrupt, seg.path, r.off, err)
			}
			r.off += n
			if rec.GetSequence() < r.next {
				continue
			}
			r.next = rec.GetSequence() + 1
			out = append(out, rec)
		}
		if len(out) >= max || last {
			return out, nil // full, or caught up with what is durable
		}
		// A finished segment read to its end: move on to the next.
		if r.next <= seg.last {
			r.next = seg.last + 1
		}
	}
	return out, nil
}

// Wait blocks until the outbox changes or ctx ends.
func (r *Reader) Wait(ctx context.Context, changed <-chan struct{}) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-changed:
		return nil
	}
}
