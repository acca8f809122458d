// Package feeds is skuflow's edge for third-party merchants' inventory
// feeds: the parsing of CSV and NDJSON bodies with limits (this package),
// the durable outbox accepted rows are written to before they are
// acknowledged (feeds/outbox), the publisher that ships the outbox to the
// `supply` topic with acks=all (feeds/publisher), and the gRPC and REST
// service that authenticates merchants against the registry and ties them
// together (feeds/service).
//
// Parsing streams: a body is read a line at a time with a bounded buffer, so
// a 100 MB feed never sits in memory. A row with a bad field is rejected on
// its own (RowError) and the feed goes on; a limit (body size, row length,
// rows per feed), a broken header or a truncated upload stops the feed
// (LimitError, HeaderError, TruncatedError) and the rows before it stay
// accepted.
//
// This package must not import gateway/, goka or sarama.
//
// Example:
//
//	rd := feeds.NewReader(body, feeds.CSV, feeds.DefaultLimits())
//	for {
//		row, err := rd.Next()
//		var re *feeds.RowError
//		switch {
//		case err == io.EOF:
//			return
//		case errors.As(err, &re):
//			reject(re)
//			continue
//		case err != nil:
//			return err
//		}
//		accept(row)
//	}
package feeds
