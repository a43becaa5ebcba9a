#!/usr/bin/env bash
# Verified backups of model files, made the way `bmcrypt` makes them (docs/backups.md), for people
# who back up by hand. Backups and manifests of the two are interchangeable.
#
#   scripts/backup.sh MODEL... [--dir DIR]
#
# Per model: copy to a hidden temp file in DIR (default: next to the model), sync it, compare the
# SHA-256 of copy and original, write the manifest DIR/<name>.bak.sha256, then link the copy to
# DIR/<name>.bak (a link never overwrites). An identical existing backup is kept; a different one is
# never touched: that model fails, the others go on, and the exit status is 1 at the end.
#
# Names must stay in step with bmcrypt/files/paths.py (lock file, temp names, long-name shortening).
set -uo pipefail

PROG=backup.sh

usage() {
  cat <<'EOF'
usage: backup.sh MODEL... [--dir DIR]

Make a verified backup of each MODEL: MODEL.bak next to it (or DIR/<name>.bak), plus a manifest
MODEL.bak.sha256 that `sha256sum -c` checks (run it in the backup's directory). The copy is
synced and compared with the original before it gets its name.

An existing identical backup is kept (skipped); a different one is never overwritten: that model
is refused and the others are still backed up.

options:
  --dir DIR   put the backups in DIR instead of next to each model
  -h, --help  show this help

exit status: 0 all backed up (or already were), 1 at least one model failed, 2 usage error.
EOF
}

err() { printf '%s: error: %s\n' "$PROG" "$*" >&2; }
usage_error() {
  err "$1"
  printf '%s: hint: see %s --help\n' "$PROG" "$PROG" >&2
  exit 2
}

# FIT=<name> shortened like paths.fit_name: names over 200 bytes keep 180 + "~" + 16 hex of SHA-256.
fit_name() {
  local LC_ALL=C
  FIT=$1
  if ((${#FIT} > 200)); then
    FIT="$(printf '%s' "$1" | head -c 180)~$(printf '%s' "$1" | sha256sum | cut -c1-16)"
  fi
}

# sha256sum's line format, with its escaping of names holding \, newline or CR.
manifest_line() {
  local digest=$1 name=$2 bs='\'
  if [[ $name == *"$bs"* || $name == *$'\n'* || $name == *$'\r'* ]]; then
    name=${name//"$bs"/"$bs$bs"}
    name=${name//$'\n'/"${bs}n"}
    name=${name//$'\r'/"${bs}r"}
    printf '\\%s  %s\n' "$digest" "$name"
  else
    printf '%s  %s\n' "$digest" "$name"
  fi
}

# ---------------------------------------------------------------- lock and temp-file bookkeeping

LOCK_FD=
LOCK_FILE=
TEMPS=()
TEMP_FDS=()

# The same exclusive lock bmcrypt takes: flock on .<name>.bmcrypt-lock beside the real file, held
# until released, retried if its holder deleted the file while we waited. Without flock(1): no lock.
take_lock() {
  local lock=$1 fd
  command -v flock >/dev/null 2>&1 || return 0
  while :; do
    if ! { exec {fd}<>"$lock"; } 2>/dev/null && ! { exec {fd}<"$lock"; } 2>/dev/null; then
      err "cannot create the lock file $lock"
      return 1
    fi
    if ! flock -n "$fd"; then
      exec {fd}<&-
      return 2
    fi
    if [[ $lock -ef /dev/fd/$fd ]]; then
      LOCK_FD=$fd LOCK_FILE=$lock
      { printf '%s\n' "$$" >"$lock"; } 2>/dev/null
      return 0
    fi
    exec {fd}<&-
  done
}

release_lock() {
  [[ -n $LOCK_FD ]] || return 0
  rm -f -- "$LOCK_FILE"  # while holding it, as bmcrypt does
  exec {LOCK_FD}<&-
  LOCK_FD=
}

# A hidden temp file in directory $2 that will become $1, flock-held so that bmcrypt's cleanup
# knows we are alive. Sets TEMP.
new_temp() {
  local dir=$2 fd
  fit_name "${1##*/}"
  TEMP=$(mktemp -- "$dir/.$FIT.bmcrypt-tmp-XXXXXXXX" 2>/dev/null) || return 1
  TEMPS+=("$TEMP")
  if command -v flock >/dev/null 2>&1 && { exec {fd}<"$TEMP"; } 2>/dev/null; then
    TEMP_FDS+=("$fd")
    flock -n "$fd"  # held until forget_temps closes the fd
  fi
}

forget_temps() {
  local t fd
  for t in "${TEMPS[@]}"; do rm -f -- "$t"; done
  for fd in "${TEMP_FDS[@]}"; do exec {fd}<&-; done
  TEMPS=() TEMP_FDS=()
}

on_exit() {
  forget_temps
  release_lock
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- one model

# Write the manifest of backup $2 (in directory $3) for digest $1 atomically: temp, sync, rename.
write_manifest() {
  local digest=$1 bak=$2 dir=$3
  new_temp "$bak.sha256" "$dir" || return 1
  manifest_line "$digest" "${bak##*/}" >"$TEMP" \
    && chmod "$(printf '%o' $((0666 & ~$(umask))))" -- "$TEMP" \
    && sync -- "$TEMP" \
    && mv -f -T -- "$TEMP" "$bak.sha256"
}

# An existing backup: fine if identical to the model (adding a missing manifest), refused otherwise.
check_existing() {
  local model=$1 bak=$2 dir=$3 mine theirs hashfd
  if [[ ! -f $bak ]]; then
    err "$bak exists and is not a regular file; left it as it is"
    return 1
  fi
  exec {hashfd}< <(sha256sum <"$model")
  read -r theirs _ < <(sha256sum <"$bak")
  read -r mine _ <&"$hashfd"
  exec {hashfd}<&-
  if [[ -z $mine || $mine != "$theirs" ]]; then
    err "a different backup already exists at $bak; left it as it is (move it away or use --dir)"
    return 1
  fi
  if [[ -e $bak.sha256 ]]; then
    if ! (cd -- "$dir" && sha256sum --status -c -- "${bak##*/}.sha256") 2>/dev/null; then
      err "$bak matches $model but its manifest $bak.sha256 does not; check both by hand"
      return 1
    fi
  elif ! write_manifest "$mine" "$bak" "$dir"; then
    err "cannot write the manifest $bak.sha256"
    return 1
  fi
  echo "$PROG: $bak already holds an identical backup of $model; skipped"
}

# Copy, sync, compare, write the manifest, link into place.
copy_verified() {
  local model=$1 bak=$2 dir=$3 tmp out original copy hashfd
  if ! new_temp "$bak" "$dir"; then
    err "cannot create a file in $dir"
    return 1
  fi
  tmp=$TEMP
  if ! out=$(cp --preserve=mode,ownership,timestamps -- "$model" "$tmp" 2>&1); then
    err "cannot copy $model to $dir: ${out##*: }"
    return 1
  fi
  if ! sync -- "$tmp"; then
    err "cannot sync $tmp to the disk"
    return 1
  fi
  exec {hashfd}< <(sha256sum <"$model")
  read -r copy _ < <(sha256sum <"$tmp")
  read -r original _ <&"$hashfd"
  exec {hashfd}<&-
  if [[ -z $original || $original != "$copy" ]]; then
    err "the copy of $model differs from the original (something wrote to it, or the disk fails)"
    return 1
  fi
  if ! write_manifest "$copy" "$bak" "$dir"; then
    err "cannot write the manifest $bak.sha256"
    return 1
  fi
  if ln -T -- "$tmp" "$bak" 2>/dev/null; then
    rm -f -- "$tmp"
  elif [[ -e $bak || -L $bak ]]; then
    err "a backup appeared at $bak while copying; left it as it is"
    return 1
  elif ! mv -n -T -- "$tmp" "$bak" 2>/dev/null || [[ -e $tmp ]]; then  # no hard links (FAT)
    err "cannot move the backup into place at $bak"
    return 1
  fi
  sync -- "$dir" 2>/dev/null || sync
  echo "$PROG: backed up $model to $bak (sha256 $copy)"
}

backup_one() {
  local model=$1 name mdir dir bak real rc
  if [[ ! -e $model && ! -L $model ]]; then
    err "no such file: $model"; return 1
  elif [[ -d $model ]]; then
    err "$model is a directory, not a model file"; return 1
  elif [[ ! -f $model ]]; then
    err "$model is not a regular file (or is a broken link)"; return 1
  elif [[ ! -r $model ]]; then
    err "cannot read $model: permission denied"; return 1
  fi
  name=${model##*/}
  if [[ $model == */* ]]; then mdir=${model%/*}; mdir=${mdir:-/}; else mdir=.; fi
  dir=${DEST_DIR:-$mdir}
  if [[ -z $DEST_DIR && $model != */* ]]; then bak=$name.bak; else bak=${dir%/}/$name.bak; fi
  if [[ ! -w $dir ]]; then
    err "cannot write to $dir: permission denied"; return 1
  fi
  if [[ $bak -ef $model ]]; then
    err "the backup path $bak is $model itself"; return 1
  fi
  real=$(realpath -e -- "$model") || { err "cannot resolve $model"; return 1; }
  fit_name "${real##*/}"
  take_lock "${real%/*}/.$FIT.bmcrypt-lock"
  rc=$?
  if ((rc == 2)); then
    err "$model is being worked on by a bmcrypt process; try again when it has finished"
  fi
  ((rc == 0)) || return 1
  if [[ -e $bak || -L $bak ]]; then
    check_existing "$model" "$bak" "$dir"
  else
    copy_verified "$model" "$bak" "$dir"
  fi
  rc=$?
  forget_temps
  release_lock
  return "$rc"
}

# ---------------------------------------------------------------- arguments

MODELS=()
DEST_DIR=
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --dir)
      (($# >= 2)) && [[ -n $2 ]] || usage_error "--dir needs a directory"
      DEST_DIR=$2
      shift 2 ;;
    --dir=*)
      DEST_DIR=${1#--dir=}
      [[ -n $DEST_DIR ]] || usage_error "--dir needs a directory"
      shift ;;
    --) shift; MODELS+=("$@"); break ;;
    -?*) usage_error "unknown option: $1" ;;
    *) MODELS+=("$1"); shift ;;
  esac
done
((${#MODELS[@]})) || usage_error "no model given"
if [[ -n $DEST_DIR && ! -d $DEST_DIR ]]; then
  err "no such directory: $DEST_DIR"
  exit 1
fi
if [[ -n $DEST_DIR && ! -w $DEST_DIR ]]; then
  err "cannot write to $DEST_DIR: permission denied"
  exit 1
fi

status=0
for model in "${MODELS[@]}"; do
  backup_one "$model" || status=1
done
exit "$status"
