package views

import (
	"fmt"
	"path/filepath"
	"sync"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
)

// recoveryBatchBytes is how much a view's storage gathers during recovery
// before it writes the batch to LevelDB.
const recoveryBatchBytes = 1 << 20

// viewWriteBuffer is the LevelDB write buffer of a view's partition: twice
// goleveldb's default, so a recovery flushes fewer, larger tables.
const viewWriteBuffer = 8 << 20

// viewOptions are the LevelDB options of a view's partition. Tables are not
// compressed: snappy was 7% of a recovery's CPU time, and a view's tables
// are a local cache that any instance rebuilds from the changelog.
var viewOptions = opt.Options{WriteBuffer: viewWriteBuffer, Compression: opt.NoCompression}

// StorageBuilder builds the LevelDB storage of views under path, one
// database per topic partition as goka's storage.DefaultBuilder does, and in
// the same place, so either opens what the other wrote. During recovery
// (until goka marks the storage recovered) writes are gathered into batches
// of about a megabyte, each written in the background while the next fills:
// goleveldb otherwise writes its journal with one system call per record,
// which was a third of a recovery's CPU time. The
// local offset goka keeps is only handed on once the batch holding its
// record is written, so a crash mid-recovery resumes from a record the
// database has. Once recovered, every write goes straight to LevelDB, as
// with the default builder.
func StorageBuilder(path string) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		fp := filepath.Join(path, fmt.Sprintf("%s.%d", topic, partition))
		o := viewOptions
		db, err := leveldb.OpenFile(fp, &o)
		if err != nil {
			return nil, fmt.Errorf("error opening leveldb: %v", err)
		}
		inner, err := storage.New(db)
		if err != nil {
			return nil, err
		}
		return &recoveryStorage{Storage: inner, db: db, batch: new(leveldb.Batch), pending: map[string][]byte{}, offset: -1}, nil
	}
}

// recoveryStorage is goka's LevelDB storage with writes batched until the
// storage is marked recovered. A full batch is written in the background
// while the next one fills (one write in flight at a time), so consuming
// the changelog and writing LevelDB overlap.
type recoveryStorage struct {
	storage.Storage
	db *leveldb.DB

	mu        sync.Mutex
	recovered bool
	batch     *leveldb.Batch
	pending   map[string][]byte // the batch by key, for reads while batching; nil value: deleted
	offset    int64             // the latest offset set while batching; -1: none

	// The batch being written in the background, if any: its records by
	// key (for reads until it is written), and where its write reports.
	writing     *leveldb.Batch
	writingKeys map[string][]byte
	written     chan error

	// A written batch and its key map, emptied for reuse.
	spare     *leveldb.Batch
	spareKeys map[string][]byte
}

// Set implements storage.Storage.
func (s *recoveryStorage) Set(key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recovered {
		return s.Storage.Set(key, value)
	}
	s.batch.Put([]byte(key), value)
	s.pending[key] = value
	return s.flushFull()
}

// Delete implements storage.Storage.
func (s *recoveryStorage) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recovered {
		return s.Storage.Delete(key)
	}
	s.batch.Delete([]byte(key))
	s.pending[key] = nil
	return s.flushFull()
}

// SetOffset implements storage.Storage. While batching, the offset is
// handed on when its record's batch is written.
func (s *recoveryStorage) SetOffset(offset int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recovered {
		return s.Storage.SetOffset(offset)
	}
	s.offset = offset
	if s.batch.Len() == 0 {
		return s.flush()
	}
	return nil
}

// Get implements storage.Storage. While batching, a key in a batch not yet
// written is answered from it (a view's update callback may read the
// previous value of a record it recovers: writing the batch for each read
// would undo the batching).
func (s *recoveryStorage) Get(key string) ([]byte, error) {
	if v, ok := s.pendingValue(key); ok {
		return v, nil
	}
	return s.Storage.Get(key)
}

// Has implements storage.Storage.
func (s *recoveryStorage) Has(key string) (bool, error) {
	if v, ok := s.pendingValue(key); ok {
		return v != nil, nil
	}
	return s.Storage.Has(key)
}

// pendingValue returns the value batched under key, nil if it was deleted;
// ok is false when no batch that is not yet written holds key.
func (s *recoveryStorage) pendingValue(key string) (v []byte, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recovered {
		return nil, false
	}
	if v, ok = s.pending[key]; ok {
		return v, true
	}
	v, ok = s.writingKeys[key]
	return v, ok
}

// Iterator implements storage.Storage.
func (s *recoveryStorage) Iterator() (storage.Iterator, error) {
	if err := s.flushPending(); err != nil {
		return nil, err
	}
	return s.Storage.Iterator()
}

// IteratorWithRange implements storage.Storage.
func (s *recoveryStorage) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	if err := s.flushPending(); err != nil {
		return nil, err
	}
	return s.Storage.IteratorWithRange(start, limit)
}

// MarkRecovered implements storage.Storage: it writes what is batched, and
// from then on every write goes straight to LevelDB.
func (s *recoveryStorage) MarkRecovered() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.recovered {
		if err := s.flushAndWait(); err != nil {
			return err
		}
		s.recovered = true
	}
	return s.Storage.MarkRecovered()
}

// Close implements storage.Storage: it writes what is batched first.
func (s *recoveryStorage) Close() error {
	err := s.flushPending()
	if cerr := s.Storage.Close(); err == nil {
		err = cerr
	}
	return err
}

// flushPending writes everything batched and waits until it is written.
func (s *recoveryStorage) flushPending() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recovered {
		return nil
	}
	return s.flushAndWait()
}

func (s *recoveryStorage) flushAndWait() error {
	if err := s.flush(); err != nil {
		return err
	}
	return s.wait()
}

// flushFull starts writing the batch once it holds recoveryBatchBytes.
func (s *recoveryStorage) flushFull() error {
	if len(s.batch.Dump()) < recoveryBatchBytes {
		return nil
	}
	return s.flush()
}

// flush starts writing the batch in the background, and then hands on the
// latest offset set; an offset set with nothing batched is handed on once
// the write in flight is done. It first waits for the write in flight, so
// batches and offsets are written in order. The caller holds mu.
func (s *recoveryStorage) flush() error {
	if err := s.wait(); err != nil {
		return err
	}
	off := s.offset
	s.offset = -1
	if s.batch.Len() == 0 {
		if off >= 0 {
			return s.Storage.SetOffset(off)
		}
		return nil
	}
	b := s.batch
	s.writing, s.writingKeys = b, s.pending
	if s.spare != nil {
		s.batch, s.pending = s.spare, s.spareKeys
		s.spare, s.spareKeys = nil, nil
	} else {
		s.batch, s.pending = new(leveldb.Batch), make(map[string][]byte, len(s.pending))
	}
	if s.written == nil {
		s.written = make(chan error, 1)
	}
	go func() {
		err := s.db.Write(b, nil)
		if err != nil {
			err = fmt.Errorf("error writing batch to leveldb: %v", err)
		} else if off >= 0 {
			err = s.Storage.SetOffset(off)
		}
		s.written <- err
	}()
	return nil
}

// wait waits for the write in flight, if any, and returns its error. The
// caller holds mu.
func (s *recoveryStorage) wait() error {
	if s.writing == nil {
		return nil
	}
	err := <-s.written
	s.writing.Reset()
	clear(s.writingKeys)
	s.spare, s.spareKeys = s.writing, s.writingKeys
	s.writing, s.writingKeys = nil, nil
	return err
}
