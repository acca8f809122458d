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

// StorageBuilder builds the LevelDB storage of views under path, one
// database per topic partition as goka's storage.DefaultBuilder does, and in
// the same place, so either opens what the other wrote. During recovery
// (until goka marks the storage recovered) writes are gathered into batches
// of about a megabyte: goleveldb otherwise writes its journal with one
// system call per record, which was a third of a recovery's CPU time. The
// local offset goka keeps is only handed on once the batch holding its
// record is written, so a crash mid-recovery resumes from a record the
// database has. Once recovered, every write goes straight to LevelDB, as
// with the default builder.
func StorageBuilder(path string) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		fp := filepath.Join(path, fmt.Sprintf("%s.%d", topic, partition))
		db, err := leveldb.OpenFile(fp, &opt.Options{WriteBuffer: viewWriteBuffer})
		if err != nil {
			return nil, fmt.Errorf("error opening leveldb: %v", err)
		}
		inner, err := storage.New(db)
		if err != nil {
			return nil, err
		}
		return &recoveryStorage{Storage: inner, db: db, batch: new(leveldb.Batch), offset: -1}, nil
	}
}

// recoveryStorage is goka's LevelDB storage with writes batched until the
// storage is marked recovered.
type recoveryStorage struct {
	storage.Storage
	db *leveldb.DB

	mu        sync.Mutex
	recovered bool
	batch     *leveldb.Batch
	offset    int64 // the latest offset set while batching; -1: none
}

// Set implements storage.Storage.
func (s *recoveryStorage) Set(key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recovered {
		return s.Storage.Set(key, value)
	}
	s.batch.Put([]byte(key), value)
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

// Get implements storage.Storage. goka reads a table only once it is
// recovered; a read while batching sees the written batches only, so it
// writes the pending one first.
func (s *recoveryStorage) Get(key string) ([]byte, error) {
	if err := s.flushPending(); err != nil {
		return nil, err
	}
	return s.Storage.Get(key)
}

// Has implements storage.Storage.
func (s *recoveryStorage) Has(key string) (bool, error) {
	if err := s.flushPending(); err != nil {
		return false, err
	}
	return s.Storage.Has(key)
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
		if err := s.flush(); err != nil {
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

func (s *recoveryStorage) flushPending() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recovered {
		return nil
	}
	return s.flush()
}

// flushFull writes the batch once it holds recoveryBatchBytes.
func (s *recoveryStorage) flushFull() error {
	if len(s.batch.Dump()) < recoveryBatchBytes {
		return nil
	}
	return s.flush()
}

// flush writes the batch, then hands on the latest offset set. The caller
// holds mu.
func (s *recoveryStorage) flush() error {
	if s.batch.Len() > 0 {
		if err := s.db.Write(s.batch, nil); err != nil {
			return fmt.Errorf("error writing batch to leveldb: %v", err)
		}
		s.batch.Reset()
	}
	if s.offset >= 0 {
		off := s.offset
		s.offset = -1
		return s.Storage.SetOffset(off)
	}
	return nil
}
