package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/skuflow/skuflow/gateway/apierr"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// watchRoute is the REST twin of WatchAvailability. grpc-gateway's
// in-process handlers cannot stream (they answer 501), so it is written by
// hand on the gateway's http mux.
const watchRoute = "GET /v1/availability:watch"

// serveSSE serves a watch as Server-Sent Events:
//
//	GET /v1/availability:watch?sku=A&sku=B
//	GET /v1/availability:watch?all=true
//
// Resume with versions[SKU]=VERSION (the query form of the request's
// versions map), and with the Last-Event-ID header EventSource sends on
// reconnecting: each answer's event id is "SKU:VERSION". Each event's data
// is one WatchAvailabilityResponse in JSON, marshalled like every other REST
// answer (the grpc-gateway mux's marshaler). A request that cannot start
// gets the gateway's usual JSON error (400, 429, 503); a stream that ends
// on the gateway's side (the client fell behind, shutdown) ends with an
// "event: end" whose data is the status {"code", "message"} (not "error",
// which EventSource clients get for network failures too).
func (s *watchService) serveSSE(gw *runtime.ServeMux) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		_, out := runtime.MarshalerForRequest(gw, r)
		req, err := watchRequestFromQuery(r.URL.RawQuery, r.Header.Get("Last-Event-ID"))
		var q watchQuery
		if err == nil {
			q, err = s.parse(req)
		}
		var sess *watchSession
		if err == nil {
			sess, err = s.open("sse", q)
		}
		if err != nil {
			runtime.HTTPError(ctx, gw, out, w, r, err)
			return
		}
		defer sess.close()

		rc := http.NewResponseController(w)
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
		w.WriteHeader(http.StatusOK)
		sw := &sseWriter{w: w, rc: rc, m: out}
		if err := rc.Flush(); err != nil {
			s.log.Warn("watch: the HTTP response cannot be flushed; events reach the client late", "err", err)
		}
		p := startWatchPump(sw.answer, s.heartbeat, sw.comment)
		err = sess.run(ctx, p)

		// A write stuck on a client that does not read is cut short, then
		// the client is told why the stream ended, if it is still there.
		p.stop()
		deadline := rc.SetWriteDeadline(time.Now().Add(s.sseGrace)) == nil
		<-p.done
		select {
		case <-p.failed:
			err = nil // the client is gone or stuck: nobody to tell
		default:
		}
		if err != nil && (ctx.Err() == nil || errors.Is(err, errKeyRevoked)) {
			if deadline {
				_ = rc.SetWriteDeadline(time.Now().Add(s.sseGrace))
			}
			if werr := sw.failure(err); werr != nil {
				s.log.Debug("watch: telling an SSE client why its stream ended failed", "err", werr)
			}
		}
		if deadline {
			_ = rc.SetWriteDeadline(time.Time{})
		}
	}
}

// watchRequestFromQuery reads a watch request from a query string: sku
// (repeated), all, versions[SKU]=VERSION, plus the Last-Event-ID header
// ("SKU:VERSION"; empty: none). Anything else is refused, so a typo does
// not silently watch nothing.
func watchRequestFromQuery(rawQuery, lastEventID string) (*pb.WatchAvailabilityRequest, error) {
	vals, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, apierr.Publicf(apierr.ErrInvalidArgument, "query string does not parse: %v", err)
	}
	req := &pb.WatchAvailabilityRequest{}
	setVersion := func(sku, v string) {
		if req.Versions == nil {
			req.Versions = map[string]string{}
		}
		req.Versions[sku] = v
	}
	if lastEventID != "" {
		i := strings.LastIndexByte(lastEventID, ':')
		if i <= 0 || i == len(lastEventID)-1 {
			return nil, apierr.Publicf(apierr.ErrInvalidArgument, "Last-Event-ID %q is not an event id of this stream (SKU:VERSION)", lastEventID)
		}
		setVersion(lastEventID[:i], lastEventID[i+1:])
	}
	// Sorted, so that of several problems the same one is reported.
	for _, key := range slices.Sorted(maps.Keys(vals)) {
		vs := vals[key] // in query order
		switch {
		case key == "sku":
			req.Sku = append(req.Sku, vs...)
		case key == "all":
			if len(vs) != 1 {
				return nil, apierr.Publicf(apierr.ErrInvalidArgument, "all is given %d times; give it once", len(vs))
			}
			all, err := strconv.ParseBool(vs[0])
			if err != nil {
				return nil, apierr.Publicf(apierr.ErrInvalidArgument, "all=%q is not a boolean (true or false)", vs[0])
			}
			req.All = all
		case strings.HasPrefix(key, "versions[") && strings.HasSuffix(key, "]") && len(key) > len("versions[]"):
			if len(vs) != 1 {
				return nil, apierr.Publicf(apierr.ErrInvalidArgument, "%s is given %d times; give each SKU's version once", key, len(vs))
			}
			setVersion(key[len("versions["):len(key)-1], vs[0])
		default:
			return nil, apierr.Publicf(apierr.ErrInvalidArgument, "unknown query parameter %q: a watch takes sku (repeated), all and versions[SKU]", key)
		}
	}
	return req, nil
}

// sseWriter writes events to one SSE response.
type sseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	m  runtime.Marshaler
}

// answer writes m as one event; an answer's event id is "SKU:VERSION".
func (sw *sseWriter) answer(m *pb.WatchAvailabilityResponse) error {
	data, err := sw.m.Marshal(m)
	if err != nil {
		return fmt.Errorf("marshal watch event: %w", err)
	}
	var b bytes.Buffer
	if a := m.GetAvailability(); a != nil {
		if id := a.GetSku() + ":" + a.GetVersion(); !strings.ContainsAny(id, "\r\n\x00") {
			b.WriteString("id: ")
			b.WriteString(id)
			b.WriteByte('\n')
		}
	}
	writeData(&b, data)
	return sw.write(b.Bytes())
}

// comment writes a comment line: it keeps proxies from closing an idle
// stream, and fails once the client is gone.
func (sw *sseWriter) comment() error { return sw.write([]byte(": keep-alive\n\n")) }

// failure writes the "end" event that ends a stream: the status err maps
// to, as the gateway's error bodies carry it.
func (sw *sseWriter) failure(err error) error {
	data, merr := sw.m.Marshal(apierr.Status(err).Proto())
	if merr != nil {
		return fmt.Errorf("marshal watch error event: %w", merr)
	}
	var b bytes.Buffer
	b.WriteString("event: end\n")
	writeData(&b, data)
	return sw.write(b.Bytes())
}

func (sw *sseWriter) write(b []byte) error {
	if _, err := sw.w.Write(b); err != nil {
		return err
	}
	if err := sw.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// writeData writes data as the event's data lines (a marshaler that
// indents writes several) and ends the event.
func writeData(b *bytes.Buffer, data []byte) {
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	data = bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		b.WriteString("data: ")
		b.Write(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
}
