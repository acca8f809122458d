package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/skuflow/skuflow/internal/deadletters"
	"github.com/skuflow/skuflow/schema"
)

func newDeadLetterCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deadletter",
		Short: "List dead letters and re-drive them to their original topics after a fix",
		Long: `Every input message a processor cannot use goes to the "deadletter" topic with
its original topic, partition, offset, key, bytes, message time and reason.

Reason classes (--reason matches a class, or any part of the reason text):
  ` + strings.Join(schema.ReasonClasses(), ", "),
	}
	cmd.AddCommand(newDeadLetterListCmd(g), newDeadLetterRedriveCmd(g))
	return cmd
}

// deadLetterFilterFlags are the filters list and redrive share.
type deadLetterFilterFlags struct {
	since, reason, topic string
}

func (f *deadLetterFilterFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.since, "since", "", "letters dead-lettered at or after this RFC 3339 time, or this long ago (e.g. 2h)")
	cmd.Flags().StringVar(&f.reason, "reason", "", "a reason class ("+strings.Join(schema.ReasonClasses(), ", ")+") or part of the reason text")
	cmd.Flags().StringVar(&f.topic, "topic", "", "the letters' original topic (e.g. supply, demand, policies, orders)")
}

func (f *deadLetterFilterFlags) filter(now time.Time) (deadletters.Filter, error) {
	out := deadletters.Filter{Reason: f.reason, Topic: f.topic}
	if f.since == "" {
		return out, nil
	}
	if d, err := time.ParseDuration(f.since); err == nil && d >= 0 {
		out.Since = now.Add(-d)
		return out, nil
	}
	t, err := time.Parse(time.RFC3339Nano, f.since)
	if err != nil {
		return out, fmt.Errorf("--since %q: want an RFC 3339 time (e.g. 2026-11-21T10:00:00Z) or a duration ago (e.g. 2h)", f.since)
	}
	out.Since = t
	return out, nil
}

func newDeadLetterListCmd(g *globalFlags) *cobra.Command {
	var ff deadLetterFilterFlags
	var asJSON bool
	var cf *clusterFlags
	cmd := &cobra.Command{
		Use:   "list --brokers host:port[,...] [--since T] [--reason R] [--topic T] [--json]",
		Short: "Decode the dead-letter topic",
		Long: `Print each dead letter: where it is in the dead-letter topic, when it was
dead-lettered, its original topic/partition@offset, group, key, reason class and
reason, whether a redrive re-sent it already, and its original value (as JSON
when the original topic's codec decodes it, else its length and first bytes).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			k, err := cf.options("skuflow-deadletter")
			if err != nil {
				return err
			}
			f, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			letters, err := deadletters.List(cmd.Context(), deadletters.ListOptions{Kafka: k, Filter: f, Logger: log})
			if err != nil {
				return err
			}
			if asJSON {
				return writeLettersJSON(cmd.OutOrStdout(), letters)
			}
			return writeLetters(cmd.OutOrStdout(), letters)
		},
	}
	cf = opsCluster(cmd)
	ff.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per letter, for scripts")
	return cmd
}

func newDeadLetterRedriveCmd(g *globalFlags) *cobra.Command {
	var ff deadLetterFilterFlags
	var dryRun, asJSON, again bool
	var cf clusterFlags
	cmd := &cobra.Command{
		Use:   "redrive --brokers host:port[,...] --since T [--reason R] [--topic T] [--dry-run]",
		Short: "Re-send dead letters' original bytes to their original topics, once",
		Long: `After a fix (a channel configured, a producer corrected, a rule relaxed),
re-send the original key and bytes of each selected dead letter to its
original topic, with its original message time, placed by key as every skuflow
producer places it. Each letter re-sent is recorded, by its partition/offset
in the dead-letter topic, in the compacted "deadletter-redriven" topic: a second
redrive of the same letters sends nothing. A re-sent message the processors
reject again is dead-lettered again, as a new letter that names the letter it
came from; redrive skips such letters unless --again is given (after a
further fix), so redrives never loop.

--since is required; --dry-run lists what would be sent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if ff.since == "" {
				return fmt.Errorf("--since is required: the time from which letters are re-sent (after the fix took effect)")
			}
			k, err := cf.options("skuflow-deadletter")
			if err != nil {
				return err
			}
			f, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			rep, err := deadletters.Redrive(cmd.Context(), deadletters.RedriveOptions{Kafka: k, Filter: f, DryRun: dryRun, Again: again, Logger: log})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "LETTER\tACTION\tTOPIC\tKEY\tCLASS\tNOTE")
			for _, r := range rep.Letters {
				l := r.Letter
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", schema.DeadLetterKey(l.Partition, l.Offset), r.Action, l.Topic, l.Key, l.Class, r.Why)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(out, "%d sent, %d would be sent, %d already redriven, %d skipped\n",
				rep.Counts[deadletters.Sent], rep.Counts[deadletters.WouldSend], rep.Counts[deadletters.AlreadyRedriven], rep.Counts[deadletters.Skipped])
			return err
		},
	}
	cf.register(cmd)
	ff.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list the letters that would be re-sent; send nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "the report as JSON")
	cmd.Flags().BoolVar(&again, "again", false, "also re-send letters of re-driven messages that were rejected again")
	return cmd
}

func writeLetters(w io.Writer, letters []deadletters.Letter) error {
	for _, l := range letters {
		redriven := ""
		if l.Redriven {
			redriven = "  [redriven]"
		}
		_, err := fmt.Fprintf(w, "%s  %s  %s/%d@%d  group=%s  key=%q  class=%s%s\n  reason: %s\n  message time: %s\n  value: %s\n",
			schema.DeadLetterKey(l.Partition, l.Offset), l.DeadLetteredAt.UTC().Format(time.RFC3339), l.Topic, l.OriginalPartition, l.OriginalOffset,
			l.Group, l.Key, l.Class, redriven, l.Reason, l.MessageTime.UTC().Format(time.RFC3339Nano), l.Summary())
		if err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%d dead letters\n", len(letters))
	return err
}

// letterJSON is a letter for scripts: key as text, the value summarised.
type letterJSON struct {
	deadletters.Letter
	Key     string `json:"key"`
	Summary string `json:"summary"`
}

func writeLettersJSON(w io.Writer, letters []deadletters.Letter) error {
	enc := json.NewEncoder(w)
	for _, l := range letters {
		if err := enc.Encode(letterJSON{Letter: l, Key: string(l.Key), Summary: l.Summary()}); err != nil {
			return err
		}
	}
	return nil
}
