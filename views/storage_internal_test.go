package views

import (
	"fmt"
	"testing"

	"github.com/lovoo/goka/storage"
)

// During recovery writes are batched and the offset is handed on only with
// the batch that holds its record; reopened mid-recovery, the storage
// resumes from a record it has. Once recovered, writes go straight through.
func TestStorageBuilderBatchesRecovery(t *testing.T) {
	dir := t.TempDir()
	st, err := StorageBuilder(dir)("table", 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Open(); err != nil {
		t.Fatal(err)
	}
	rs := st.(*recoveryStorage)
	big := make([]byte, 4096)
	n := 2*recoveryBatchBytes/len(big) + 10 // at least two full batches and a partial one
	for i := range n {
		if err := st.Set(fmt.Sprintf("k%05d", i), big); err != nil {
			t.Fatal(err)
		}
		if err := st.SetOffset(int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Delete("k00000"); err != nil {
		t.Fatal(err)
	}
	if err := st.SetOffset(int64(n)); err != nil {
		t.Fatal(err)
	}
	// The offset handed on so far belongs to a record that is written.
	handed, err := rs.Storage.GetOffset(-1)
	if err != nil {
		t.Fatal(err)
	}
	if handed < 0 || handed >= int64(n) {
		t.Fatalf("offset handed on while batching = %d, want one of a written batch (0..%d)", handed, n-1)
	}
	if ok, err := rs.Storage.Has(fmt.Sprintf("k%05d", handed)); err != nil || !ok {
		t.Fatalf("record of handed-on offset %d written: %v, %v", handed, ok, err)
	}
	// A read while batching answers from the pending batch, without writing it.
	if v, err := st.Get(fmt.Sprintf("k%05d", n-1)); err != nil || len(v) != len(big) {
		t.Fatalf("Get while batching: %d bytes, %v", len(v), err)
	}
	if ok, err := rs.Storage.Has(fmt.Sprintf("k%05d", n-1)); err != nil || ok {
		t.Fatalf("pending record written by a Get: %v, %v", ok, err)
	}
	if v, err := st.Get("k00000"); err != nil || v != nil {
		t.Fatalf("deleted key: %q, %v", v, err)
	}
	if ok, err := st.Has("k00000"); err != nil || ok {
		t.Fatalf("Has(deleted key) = %v, %v", ok, err)
	}
	if ok, err := st.Has(fmt.Sprintf("k%05d", n-2)); err != nil || !ok {
		t.Fatalf("Has(pending key) = %v, %v", ok, err)
	}
	if got, err := st.GetOffset(-1); err != nil || got != handed {
		t.Fatalf("offset after reads while batching = %d, %v; want %d (unchanged)", got, err, handed)
	}
	// An iterator sees everything: it writes the pending batch first.
	it, err := st.Iterator()
	if err != nil {
		t.Fatal(err)
	}
	it.Release()
	if got, err := st.GetOffset(-1); err != nil || got != int64(n) {
		t.Fatalf("offset after the pending batch was written = %d, %v; want %d", got, err, n)
	}
	if v, err := rs.Storage.Get("k00000"); err != nil || v != nil {
		t.Fatalf("deleted key written: %q, %v", v, err)
	}
	if err := st.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	if err := st.Set("after", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := st.SetOffset(int64(n + 1)); err != nil {
		t.Fatal(err)
	}
	if rs.batch.Len() != 0 {
		t.Fatalf("%d records batched after recovery", rs.batch.Len())
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// goka's default builder opens the same database with everything in it.
	again, err := storage.DefaultBuilder(dir)("table", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if v, err := again.Get("after"); err != nil || string(v) != "x" {
		t.Fatalf("after reopening: %q, %v", v, err)
	}
	if got, err := again.GetOffset(-1); err != nil || got != int64(n+1) {
		t.Fatalf("offset after reopening = %d, %v; want %d", got, err, n+1)
	}
}

// Close during recovery writes what is batched, with its offset.
func TestStorageBuilderCloseWritesBatch(t *testing.T) {
	dir := t.TempDir()
	st, err := StorageBuilder(dir)("table", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Open(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := st.Set(fmt.Sprintf("k%d", i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if err := st.SetOffset(int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := StorageBuilder(dir)("table", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if v, err := again.Get("k4"); err != nil || len(v) != 1 || v[0] != 4 {
		t.Fatalf("k4 after reopening: %v, %v", v, err)
	}
	if got, err := again.GetOffset(-1); err != nil || got != 4 {
		t.Fatalf("offset after reopening = %d, %v; want 4", got, err)
	}
}
