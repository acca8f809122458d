package testkit_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/internal/testkit"
)

// A held port hands each connection to the lease that accepts it; a
// connection made between two leases waits for the next one instead of
// being refused.
func TestPortLendsItselfInTurn(t *testing.T) {
	p := testkit.HoldPort(t)
	first := p.Listener()
	if first.Addr().String() != p.Addr().String() {
		t.Fatalf("lease at %s, port at %s", first.Addr(), p.Addr())
	}
	echo(t, first, p.Addr().String(), "one")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
	}

	// Nobody holds a lease: the port stays bound and takes the connection.
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatalf("dial between leases: %v", err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "two\n"); err != nil {
		t.Fatal(err)
	}
	second := p.Listener()
	defer second.Close()
	s, err := second.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "two\n" {
		t.Fatalf("the next lease read %q, %v; want the waiting connection's %q", buf, err, "two\n")
	}
}

// echo accepts one connection on ln from a client writing msg and checks
// that it arrives.
func echo(t *testing.T, ln net.Listener, addr, msg string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != msg {
		t.Fatalf("read %q, %v; want %q", buf, err, msg)
	}
}

// fatalTB records Fatalf and stops the caller as testing.T would.
type fatalTB struct {
	testing.TB
	msg string
}

type stopped struct{}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(stopped{})
}

func runEventually(timeout time.Duration, cond func() error) (msg string) {
	f := &fatalTB{}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopped); !ok {
				panic(r)
			}
			msg = f.msg
		}
	}()
	testkit.Eventually(f, timeout, cond)
	return ""
}

func TestEventually(t *testing.T) {
	// Returns as soon as the condition holds, checking again after failures.
	n := 0
	if msg := runEventually(time.Minute, func() error {
		if n++; n < 3 {
			return fmt.Errorf("check %d", n)
		}
		return nil
	}); msg != "" || n != 3 {
		t.Errorf("Eventually failed with %q after %d checks, want success on the third", msg, n)
	}
	// Fails with the last error when the condition never holds.
	n = 0
	msg := runEventually(0, func() error { n++; return fmt.Errorf("still wrong (%d)", n) })
	want := fmt.Sprintf("still wrong (%d)", n)
	if !strings.Contains(msg, want) || !strings.Contains(msg, fmt.Sprintf("%d checks", n)) {
		t.Errorf("failure %q, want the last error %q and the number of checks", msg, want)
	}
}
