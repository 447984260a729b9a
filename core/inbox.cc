// The inbox, from the engine loop: what other processes ask of this one — a
// failover announced by a session's peer (matched to its session, kept a
// while when the session is not known yet, answered with a reset when it
// never will be), and the requests and answers of connections opened over
// the volume (open_over_storage.cc).

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/engine_impl.h"
#include "core/failover_message.h"

namespace diskwire {

namespace {

// What this side's log says of a failover its peer announced: an exiting
// process's hand-over is no network failure, and an operator who alerts on
// failovers must be able to tell.
std::string AnnouncedReason(const FailoverMessage& m) {
  if (m.cause.empty()) return "the peer announced a failover";
  if (m.cause == "exit") {
    return "the peer's process exits with bytes this side has not "
           "acknowledged; they follow over the volume, the network did not "
           "fail";
  }
  return absl::StrCat("the peer announced a failover (", m.cause, ")");
}

}  // namespace

void EngineImpl::HandleInbox() {
  auto inbox = recv()->TakeInbox(process_id_);
  if (!inbox.ok()) {
    log_.Warn("reading the inbox: ", inbox.status().message());
    return;
  }
  rejected_records_.fetch_add(inbox->problems.size(),
                              std::memory_order_relaxed);
  for (const std::string& problem : inbox->problems)
    log_.Warn("inbox: ", problem);
  const int64_t now = clock_->NowNs();
  for (const storage::InboxMessage& msg : inbox->messages) {
    auto m = DecodeFailover(msg.payload);
    if (!m.ok()) {
      log_.Warn("inbox message ", msg.name, ": ", m.status().message());
      rejected_records_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (m->IsOpenRequest()) {
      HandleOpenRequest(*m);
    } else if (!m->answer.empty()) {
      HandleOpenAnswer(*m);
    } else {
      unmatched_.push_back({*m, now});
    }
  }
  std::vector<std::pair<FailoverMessage, int64_t>> keep;
  for (auto& [m, since] : unmatched_) {
    std::shared_ptr<Session> s;
    {
      absl::MutexLock lock(&table_.mu);
      s = table_.Find(KeyOf(m.session, m.sender_role == Role::kClient
                                           ? Role::kServer
                                           : Role::kClient));
    }
    if (s == nullptr) {
      // The announcement can overtake our own accept(); give the session a
      // moment to appear. Then it is one this process no longer has (it
      // ended here): TCP answers a segment for it with a reset, and so do we,
      // or the peer would wait for this process to die.
      if (now - since < config_.peer_timeout_ms * 1'000'000) {
        keep.push_back({m, since});
      } else {
        AnswerUnknownSession(m);
      }
      continue;
    }
    const SessionState st = s->state.load();
    if (st == SessionState::kDirect) {
      s->peer_claim_ns = m.claim;
      TriggerFailover(s.get(), AnnouncedReason(m), m.from_process, m.episode);
    } else if (st == SessionState::kStorage || st == SessionState::kResuming) {
      // A connection opened over the volume learns which process accepted
      // it (a forked child, perhaps) from that process's announcement.
      if (s->peer_process.empty() ||
          (s->opened_over_storage && m.episode == 1 && s->episode == 1)) {
        s->peer_process = m.from_process;
      }
      if (s->peer_process == m.from_process && s->peer_claim_ns == 0) {
        s->peer_claim_ns = m.claim;
        OpenPeerReader(s.get());
      }
      if (m.episode > s->episode) {
        // The peer left an episode this side is still in (it gave up a
        // resume, or failed over again while this side was resuming).
        if (s->link != nullptr) {
          AbandonResume(s.get(), "the peer moved to a new episode", false);
        }
        ReFailover(s.get(), m.episode, "the peer announced a new episode");
      }
    }
  }
  unmatched_.swap(keep);
}

void EngineImpl::AnswerUnknownSession(const FailoverMessage& m) {
  const Role mine =
      m.sender_role == Role::kClient ? Role::kServer : Role::kClient;
  // Named as the announcer expects this side's channel: this process, and
  // the claim the announcer knew of it.
  const std::string channel =
      ChannelName(m.session, SendDirection(mine), std::max(m.episode, 1u),
                  IncarnationTag(process_id_, m.to_claim));
  storage::Record rst;
  rst.header.type = storage::RecordType::kRst;
  rst.header.session_id = m.session;
  rst.header.direction = SendDirection(mine);
  // The peer reads from what its application has read on.
  rst.header.stream_offset = m.delivered;
  absl::Status st = send_volume_->RemoveChannel(channel);
  absl::StatusOr<std::unique_ptr<storage::ChannelWriter>> writer =
      st.ok() ? send_volume_->OpenWriter(channel, storage::WriterOptions{})
              : absl::StatusOr<std::unique_ptr<storage::ChannelWriter>>(st);
  if (writer.ok()) st = (*writer)->Append({rst});
  if (writer.ok() && st.ok()) st = (*writer)->Close();
  if (!writer.ok()) st = writer.status();
  if (!st.ok()) {
    log_.Warn("session ", SessionIdHex(m.session), ": cannot answer ",
              m.from_process, " with a reset: ", st.message());
    return;
  }
  log_.Info("session ", SessionIdHex(m.session), ": ", m.from_process,
            " announced a failover of a connection this process no longer "
            "has; answered with a reset");
}

}  // namespace diskwire
