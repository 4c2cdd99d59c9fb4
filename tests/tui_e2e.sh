#!/usr/bin/env bash
# tui_e2e.sh — end-to-end test of the terminal app in a real terminal: drives
# `strata chat` inside tmux at 100x30 on the bundled 8-layer model with a
# budget of 4 layers (so the layer map shows streaming), and checks the
# screen with capture-pane: a prompt gets a streamed reply, the panels show
# numbers (tok/s, ready rate) and a layer map of one cell per layer, the
# History screen, resizes to 60x20 and 130x40 (also mid-generation), Esc
# stops a reply (kept); terminal input (invalid UTF-8, control keys, pastes,
# a 1 MiB paste, resize storms) checked byte for byte against the message
# stored in the history database (sqlite3); F10 quits; then TERM=vt100 (no
# colours), Ctrl-Q.
#
#   tests/tui_e2e.sh path/to/strata [capture-dir]
#
# With a capture dir, the screens are also written there as text (for
# docs/TUI.md). Exit 77 (skipped) when tmux is not installed.
set -uo pipefail
STRATA=${1:?usage: tui_e2e.sh path/to/strata [capture-dir]}
CAPDIR=${2:-}
STRATA=$(cd "$(dirname "$STRATA")" && pwd)/$(basename "$STRATA")
command -v tmux >/dev/null || { echo "tmux not installed: skipped"; exit 77; }
export LC_ALL=C.UTF-8 LANG=C.UTF-8
TMP=$(mktemp -d /tmp/strata-tui.XXXXXX)
SOCK="$TMP/tmux.sock"
export XDG_STATE_HOME="$TMP/state"
export XDG_DATA_HOME="$TMP/data"          # the history database
T() { tmux -S "$SOCK" -f /dev/null "$@"; }
cleanup() { T kill-server >/dev/null 2>&1; rm -rf "$TMP"; }
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    echo "---- screen ----"
    T capture-pane -p -t e2e 2>/dev/null
    echo "---- stderr ----"
    cat "$TMP/err.log" 2>/dev/null
    exit 1
}
screen() { T capture-pane -p -t e2e; }
# Waits are hang checks, not speed tests: a sanitized build on a loaded
# 2-core CI machine can be several times slower than a developer's, so every
# limit is multiplied by TUI_E2E_SLOW (default 4).
SLOW=${TUI_E2E_SLOW:-4}
# wait_for TEXT [SECONDS]: until the screen shows TEXT (fixed string)
wait_for() {
    local n=$(( ${2:-15} * 20 * SLOW ))
    for ((i = 0; i < n; i++)); do
        screen | grep -qF -- "$1" && return 0
        sleep 0.05
    done
    fail "'$1' did not appear within $(( ${2:-15} * SLOW )) s"
}
wait_gone() {
    local n=$(( ${2:-15} * 20 * SLOW ))
    for ((i = 0; i < n; i++)); do
        screen | grep -qF -- "$1" || return 0
        sleep 0.05
    done
    fail "'$1' still on the screen after $(( ${2:-15} * SLOW )) s"
}
wait_re() {
    local n=$(( ${2:-15} * 20 * SLOW ))
    for ((i = 0; i < n; i++)); do
        screen | grep -qE -- "$1" && return 0
        sleep 0.05
    done
    fail "/$1/ did not appear within $(( ${2:-15} * SLOW )) s"
}
check() { screen | grep -qE -- "$1" || fail "$2 (no match for /$1/)"; }
# wait_status WHAT: until the status line is the screen's last row (laid out
# for the window's size: tmux may apply a resize to the terminal a moment
# after resize-window returns)
wait_status() {
    local n=$(( 5 * 20 * SLOW ))
    for ((i = 0; i < n; i++)); do
        screen | tail -1 | grep -qF "strata-tiny-14m │" && return 0
        sleep 0.05
    done
    fail "not laid out for the window's size $1"
}
capture() { [ -n "$CAPDIR" ] && screen > "$CAPDIR/$1.txt"; return 0; }
width_ok() {
    local w=$1 line
    while IFS= read -r line; do
        [ ${#line} -le "$w" ] || fail "a line is wider than $w columns: '$line'"
    done < <(screen)
}
[ -n "$CAPDIR" ] && mkdir -p "$CAPDIR"

# ---- chat at 100x30 with a layer budget ------------------------------------
T new-session -d -s e2e -x 100 -y 30 \
    "TERM=tmux-256color '$STRATA' chat --cache-layers 4 --seed 7 -n 48 -t 1 -c 2048 2>'$TMP/err.log'; echo \$? > '$TMP/rc'" \
    || fail "tmux did not start"
T set-option -t e2e -g status off >/dev/null
wait_for "ready" 20
check "strata-tiny-14m: Q8_0, 8 layers" "the model's line"
wait_for "Layers 8" 5
capture chat-empty
T send-keys -t e2e -l "Once upon a time there was a little fox"
T send-keys -t e2e Enter
wait_for "tok/s · prompt" 30              # the reply's figures: it has ended
s=$(screen)
grep -q "^You" <<<"$s" || fail "no user message"
grep -qF "Once upon a time there was a little fox" <<<"$s" || fail "the user's text is missing"
# the reply: the header, then at least one line of text under it
grep -qE "^strata-tiny-14m +[0-9]+ tok · [0-9.]+ tok/s" <<<"$s" || fail "no reply header with figures"
reply=$(awk '/^strata-tiny-14m +[0-9]+ tok/{f=1; next} f' <<<"$s" | cut -c1-60 | grep -E '^  [^ ]' | head -1)
[ -n "$reply" ] || fail "the reply has no text"
# panels: numbers (they sample at 10 Hz: a short reply may end between two samples)
wait_re "decode [0-9]+\.[0-9]+ tok/s" 3
check "prompt [0-9]+\.[0-9]+ tok/s" "prompt tok/s"
check "ready [0-9]+\.[0-9]% when needed" "ready-when-needed rate"
check "sync [0-9]+ · waits [0-9]+ · stall" "sync loads and stall"
check "slots [0-9]/4" "slot occupancy"
check "rss [0-9.]+ (MiB|KiB|GiB)" "process memory"
# the layer map: the line under "Layers 8", exactly 8 cells
wait_re "│[·░▓█▪]*[▓█░][·░▓█▪]* *$" 3
s=$(screen)
map=$(grep -A1 -F "Layers 8" <<<"$s" | tail -1 | sed 's/.*│//; s/ *$//')
[ "${#map}" -eq 8 ] || fail "layer map '$map' has ${#map} cells, expected 8"
[[ "$map" =~ ^[·░▓█▪]{8}$ ]] || fail "layer map '$map' has unknown cells"
[[ "$map" == *[▓█░]* ]] || fail "layer map '$map' shows no resident layer"
capture chat

# ---- the other screens ----------------------------------------------------------
T send-keys -t e2e F3
wait_for "── History"
wait_for "Once upon a time there was a little fox" 5    # the conversation is stored
check "strata-tiny-14m +[0-9-]+ [0-9:]+ +2$" "the conversation's model, date and 2 messages"
capture history
T send-keys -t e2e -l "/fox"                    # incremental full-text search
wait_for "1 match" 5
check "· user: .*little fox" "the search hit"
capture history-search
T send-keys -t e2e Enter Enter                  # to the results, open the conversation
wait_for "(read-only)" 5
check "^ +Once upon a time there was a little fox" "the stored message"
capture history-open
T send-keys -t e2e Escape Escape
T send-keys -t e2e F4
wait_for "── Bench"
capture bench
T send-keys -t e2e F1
wait_for "keys and commands"
check "Esc or Ctrl-C" "the help lists the stop key"
capture help
T send-keys -t e2e F2
wait_for "── Message"

# ---- resizes ---------------------------------------------------------------------
T resize-window -t e2e -x 60 -y 20
wait_for "Speed"
sleep 0.3
width_ok 60
s=$(screen)
# panels below the chat: the Speed box starts under the input rule, no side border
msg_line=$(grep -n "Message" <<<"$s" | head -1 | cut -d: -f1)
speed_line=$(grep -n "Speed" <<<"$s" | head -1 | cut -d: -f1)
[ -n "$msg_line" ] && [ -n "$speed_line" ] && [ "$speed_line" -gt "$msg_line" ] || fail "60x20: the panels are not below the chat"
grep -qE "decode [0-9.]+ tok/s" <<<"$s" || fail "60x20: no decode figure"
map=$(grep -A1 -F "Layers 8" <<<"$s" | tail -1 | sed 's/^.*Layers 8.*$//' )
grep -qE "[·░▓█▪]{8}" <<<"$s" || fail "60x20: no layer map"
capture chat-60x20
T resize-window -t e2e -x 130 -y 40
sleep 0.3
wait_for "Speed"
width_ok 130
s=$(screen)
col=$(grep -F "Speed" <<<"$s" | head -1 | sed 's/Speed.*//' | wc -m)
[ "$col" -gt 80 ] || fail "130x40: the panels are not beside the chat (Speed at column $col)"
[ "$(grep -c "│" <<<"$s")" -ge 30 ] || fail "130x40: no side border"
capture chat-130x40
T resize-window -t e2e -x 100 -y 30
sleep 0.2

# ---- stop a reply with Esc (resizing while it streams) --------------------------
T send-keys -t e2e -l "/clear"
T send-keys -t e2e Enter
T send-keys -t e2e -l "/max 1600"            # (-c 2048: a reply of seconds, time to stop it)
T send-keys -t e2e Enter
T send-keys -t e2e -l "Tell me a long story about a dragon"
T send-keys -t e2e Enter
wait_re "● generating [0-9.]+ tok/s" 10    # tokens are arriving
T resize-window -t e2e -x 80 -y 24 \; send-keys -t e2e Escape \; resize-window -t e2e -x 100 -y 30
wait_re "stopped *$" 10                  # the status line says so
wait_status "after the resizes"
s=$(screen)
ntok=$(grep -oE "reply +[0-9]+ tokens" <<<"$s" | grep -oE "[0-9]+")
[ -n "$ntok" ] && [ "$ntok" -lt 1600 ] || fail "the reply was not stopped early ($ntok tokens)"
T send-keys -t e2e Tab Home               # to the top of the conversation
wait_re "^strata-tiny-14m  stopped  [0-9]+ tok" 5
wait_for "Tell me a long story about a dragon" 5   # (the scroll to the top may land a frame later)
s=$(screen)
reply=$(awk '/^strata-tiny-14m  stopped/{f=1; next} f' <<<"$s" | cut -c1-60 | grep -E '^  [^ ]' | head -1)
[ -n "$reply" ] || fail "the partial reply was not kept"
capture chat-stopped
T send-keys -t e2e End Tab                # back to the input

# ---- a multi-line paste stays in the input (bracketed paste) ----------------------
T set-buffer -b e2e "$(printf 'pasted line one\npasted line two')"
T paste-buffer -p -b e2e -t e2e
wait_for "pasted line two" 5
s=$(screen)
grep -qE "^. pasted line one" <<<"$s" && grep -qE "^  pasted line two" <<<"$s" || fail "the paste is not two lines of the input"
grep -qE "^You" <<<"$(awk '/pasted line one/{exit} 1' <<<"$s" | tail -3)" && fail "the paste was sent"
T send-keys -t e2e C-c                   # clears the input
wait_gone "pasted line two" 5

# ---- a follow-up reuses the cache --------------------------------------------------
T send-keys -t e2e -l "/max 8"
T send-keys -t e2e Enter
T send-keys -t e2e -l "And then?"
T send-keys -t e2e Enter
wait_for "And then?" 5
cached=""
for ((i = 0; i < 200; i++)); do
    # the figures of the reply under "And then?"
    cached=$(screen | awk '/^  And then\?/{f=1} f' | grep -oE "prompt [0-9]+ \(\+[0-9]+ cached\)" | head -1 | grep -oE "\+[0-9]+" | tr -d +)
    [ -n "$cached" ] && break
    sleep 0.05
done
[ -n "$cached" ] && [ "$cached" -gt 10 ] || fail "the follow-up did not reuse the KV cache (cached: '$cached')"

# ---- terminal input: what reaches the model is what was typed ------------------------
# The stored user message (the history database; the engine renders the same
# text into the prompt) is compared byte for byte with what was sent, under
# the rule of ui/input.h: invalid UTF-8 -> one U+FFFD per maximal subpart (as
# Python's bytes.decode(errors="replace")), control characters (C0 but Tab
# and line breaks, DEL, C1) act as keys or are dropped, CR and CRLF in a
# paste -> LF, the message trimmed of spaces and line breaks at both ends.
command -v sqlite3 >/dev/null || fail "the sqlite3 command is missing (scripts/deps.sh installs it)"
DB="$XDG_DATA_HOME/strata/strata.db"
q() { sqlite3 -cmd ".timeout 5000" "$DB" "$1"; }
n_user() { q "SELECT count(*) FROM messages WHERE role = 'user'"; }
hex_of() { printf "$1" | od -An -v -tx1 | tr -d ' \n' | tr a-f A-F; }
# wait_saved N: until N user messages are stored (their replies have ended)
wait_saved() {
    local n=$(( 20 * 20 * SLOW ))
    for ((i = 0; i < n; i++)); do
        [ "$(n_user 2>/dev/null)" = "$1" ] && return 0
        sleep 0.05
    done
    fail "the database holds $(n_user) user messages, expected $1"
}
# expect_stored PRINTF-FORMAT WHAT: the newest stored user message
expect_stored() {
    local want got
    want=$(hex_of "$1")
    got=$(q "SELECT hex(content) FROM messages WHERE role = 'user' ORDER BY id DESC LIMIT 1")
    [ "$got" = "$want" ] || fail "$2: stored $got, expected $want"
}
# raw PRINTF-FORMAT: those bytes into the tmux buffer "raw"
raw() { printf "$1" > "$TMP/raw.bin"; T load-buffer -b raw "$TMP/raw.bin"; }
# storm N: N resizes to sizes all over the place (1x1 to 200x60)
storm() { for ((k = 1; k <= $1; k++)); do T resize-window -t e2e -x $(( 1 + (k * 37) % 200 )) -y $(( 1 + (k * 13) % 60 )); done; }
T send-keys -t e2e F5                     # panels off: the chat's notes on whole lines
T send-keys -t e2e -l "/max 4"
T send-keys -t e2e Enter
wait_saved 3                               # the three messages sent so far (saved after their replies)
base=3
# typed: invalid UTF-8 (paste-buffer without -p: the bytes arrive as keys)
# and every control key that is bound to nothing
raw 'A\xc3(B\xe2\x82C\xffD\xed\xa0\x80E\xf0\x9f\x98\x80F\xc3\xa9G\xc0\xafH\xf4\x90\x80\x80I\xe0\x80J\x80K\xf0\x9f\x98L\xc2\x85M\xc2\x9bN'
T paste-buffer -r -b raw -t e2e
T send-keys -t e2e C-g C-n C-o C-p C-r C-s C-t C-v C-x C-y C-z 'C-\' 'C-]' C-^ C-_
T send-keys -t e2e -l "O"
T send-keys -t e2e Enter
wait_saved $(( base + 1 ))
expect_stored 'A\xef\xbf\xbd(B\xef\xbf\xbdC\xef\xbf\xbdD\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdE\xf0\x9f\x98\x80F\xc3\xa9G\xef\xbf\xbd\xef\xbf\xbdH\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdI\xef\xbf\xbd\xef\xbf\xbdJ\xef\xbf\xbdK\xef\xbf\xbdLMNO' \
    "typed invalid UTF-8 and control keys"
# a bracketed paste: line breaks of every kind, a tab, controls, NUL, Esc,
# C1, a broken sequence, one cut short at the end
raw 'p1\r\np2\rp3\np4\tq\x01\x02\x7f\xc2\x85r\xe2\x82s\x00t\x1b\x1bu\r\n\r\nv\xc3'
T paste-buffer -p -r -b raw -t e2e
T send-keys -t e2e Enter
wait_saved $(( base + 2 ))
expect_stored 'p1\np2\np3\np4\tqr\xef\xbf\xbdstu\n\nv\xef\xbf\xbd' "a bracketed paste"
# 1 MiB pasted while the window is resized: longer than the context, so not
# sent (nothing stored); the message says how many tokens it needs, exactly
# as many as `strata run --chat` counts for the same text (nothing was lost
# or changed on the way), and the text is back in the input
awk 'BEGIN { for (i = 0; i < 15000; i++) printf "line %d: the quick brown fox, été 漢字 😀, jumps over the lazy dog\n", i; printf "END-OF-PASTE" }' > "$TMP/big.txt"
[ "$(stat -c %s "$TMP/big.txt")" -ge 1048576 ] || fail "the big paste is smaller than 1 MiB"
want_tok=$("$STRATA" run --chat -f "$TMP/big.txt" -n 1 -t 1 2>&1 >/dev/null | grep -oE "[0-9]+ tokens" | head -1 | grep -oE "[0-9]+")
[ -n "$want_tok" ] || fail "strata run --chat did not count the big paste's tokens"
T load-buffer -b big "$TMP/big.txt"
storm 100 &
storm_pid=$!
T paste-buffer -p -b big -t e2e
wait "$storm_pid"
T resize-window -t e2e -x 100 -y 30
wait_for "END-OF-PASTE" 30
T send-keys -t e2e Enter
wait_re "message not sent: it needs [0-9]+ tokens" 30
got_tok=$(screen | grep -oE "it needs [0-9]+ tokens" | grep -oE "[0-9]+")
[ "$got_tok" = "$want_tok" ] || fail "the 1 MiB paste needs $got_tok tokens in the app, $want_tok in strata run: it was changed on the way"
check "back in the input" "the rejected message is not back in the input"
check "END-OF-PASTE" "the rejected message is not in the input"
[ "$(n_user)" = $(( base + 2 )) ] || fail "the rejected message was stored"
T send-keys -t e2e C-c                     # clears the input
wait_gone "END-OF-PASTE" 10
# typing and a reply during a resize storm: the app stays up, the text is intact
T send-keys -t e2e -l "/max 600"
T send-keys -t e2e Enter
storm 150 &
storm_pid=$!
T send-keys -t e2e -l "A story told in a storm: 漢字, été, 😀 and the end"
T send-keys -t e2e Enter
wait "$storm_pid"
T resize-window -t e2e -x 100 -y 30
wait_saved $(( base + 3 ))
expect_stored 'A story told in a storm: \xe6\xbc\xa2\xe5\xad\x97, \xc3\xa9t\xc3\xa9, \xf0\x9f\x98\x80 and the end' "typed during a resize storm"
[ -n "$(q "SELECT content FROM messages WHERE role = 'assistant' ORDER BY id DESC LIMIT 1")" ] || fail "no reply during the resize storm"
wait_status "after the storm"
width_ok 100
T send-keys -t e2e F5                     # panels back on

# ---- quit with F10 -------------------------------------------------------------------
T send-keys -t e2e F10
for ((i = 0; i < 100; i++)); do [ -s "$TMP/rc" ] && break; sleep 0.05; done
[ -s "$TMP/rc" ] || fail "F10 did not quit"
[ "$(cat "$TMP/rc")" = 0 ] || fail "exit status $(cat "$TMP/rc")"
[ -s "$TMP/err.log" ] && fail "stderr: $(cat "$TMP/err.log")"

# ---- a damaged history database: the chat works, says so, writes nothing -----------
cp "$DB" "$TMP/damaged.db"                 # (checkpointed when the app quit)
[ ! -e "$DB-wal" ] || fail "the database's WAL was not checkpointed at exit"
dd if=/dev/zero of="$TMP/damaged.db" bs=4096 seek=1 count=1 conv=notrunc status=none   # page 2: zeros
cp "$TMP/damaged.db" "$TMP/damaged.orig"
rm -f "$TMP/rc"
T new-session -d -s e2e -x 100 -y 30 \
    "TERM=tmux-256color '$STRATA' chat -n 8 -t 1 --db '$TMP/damaged.db' 2>'$TMP/err.log'; echo \$? > '$TMP/rc'" \
    || fail "tmux did not start (damaged database)"
wait_for "history not stored: database" 20
wait_for "ready" 20
T send-keys -t e2e F3
wait_for "history database not available" 5
check "is damaged" "History does not say why"
capture history-damaged
T send-keys -t e2e F2
T send-keys -t e2e -l "Hello"
T send-keys -t e2e Enter
wait_for "tok/s · prompt" 30
T send-keys -t e2e F10
for ((i = 0; i < 100 * SLOW; i++)); do [ -s "$TMP/rc" ] && break; sleep 0.05; done
[ "$(cat "$TMP/rc" 2>/dev/null)" = 0 ] || fail "damaged database: did not quit cleanly"
[ -s "$TMP/err.log" ] && fail "damaged database: stderr: $(cat "$TMP/err.log")"
cmp -s "$TMP/damaged.db" "$TMP/damaged.orig" || fail "the damaged database was written to"

# ---- TERM=vt100: no colours, still usable; Ctrl-Q quits ----------------------------
rm -f "$TMP/rc"
T new-session -d -s e2e -x 80 -y 24 \
    "TERM=vt100 '$STRATA' chat -n 24 2>'$TMP/err.log'; echo \$? > '$TMP/rc'" || fail "tmux did not start (vt100)"
wait_for "ready" 20
T send-keys -t e2e -l "Hello"
T send-keys -t e2e Enter
wait_for "tok/s · prompt" 30
wait_re "decode [0-9.]+ tok/s" 3
capture chat-vt100
T send-keys -t e2e C-q
for ((i = 0; i < 100; i++)); do [ -s "$TMP/rc" ] && break; sleep 0.05; done
[ -s "$TMP/rc" ] || fail "Ctrl-Q did not quit (vt100)"
[ "$(cat "$TMP/rc")" = 0 ] || fail "vt100: exit status $(cat "$TMP/rc")"

# ---- 20x6: still alive ------------------------------------------------------------------
rm -f "$TMP/rc"
T new-session -d -s e2e -x 20 -y 6 \
    "'$STRATA' chat 2>'$TMP/err.log'; echo \$? > '$TMP/rc'" || fail "tmux did not start (20x6)"
wait_for "strata-tiny" 20
T send-keys -t e2e -l "Hi"
T send-keys -t e2e Enter
sleep 1
width_ok 20
T resize-window -t e2e -x 5 -y 2
sleep 0.2
T resize-window -t e2e -x 20 -y 6
sleep 0.2
T send-keys -t e2e F10
for ((i = 0; i < 100; i++)); do [ -s "$TMP/rc" ] && break; sleep 0.05; done
[ "$(cat "$TMP/rc" 2>/dev/null)" = 0 ] || fail "20x6: did not quit cleanly"
echo "tui_e2e: all checks passed"
