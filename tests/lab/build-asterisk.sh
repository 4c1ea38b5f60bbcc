#!/usr/bin/env bash
# Build Asterisk 22 with its bundled pjproject, offline, from the two source tarballs in
# ../shared/reference/asterisk-src (read in place, never copied into the repository).
# The installed tree is cached per machine, keyed by the tarballs' checksums, so only a
# machine's first run pays for the build (about 6 minutes on 2 cores).
#
# Prints the cache folder on its last line. Exits 3, with the reason on stderr, when the
# lab cannot be built here (no tarballs, no compiler, missing packages and not root).
# With --cached-only it builds nothing: the cached tree, or exit 3.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cached_only=no
[ "${1:-}" = --cached-only ] && cached_only=yes

# The tarballs: where PGCTI_ASTERISK_SRC says, else beside the project root, else beside
# the local repository this one was cloned from (a clean clone in a scratch folder, as CI
# makes, still reads them in place).
src_candidates=("$root/../shared/reference/asterisk-src")
origin=$(git -C "$root" config --get remote.origin.url 2>/dev/null || true)
origin=${origin#file://}
case $origin in /*) src_candidates+=("$(dirname "$origin")/shared/reference/asterisk-src") ;; esac
src=${PGCTI_ASTERISK_SRC:-}
if [ -z "$src" ]; then
  for candidate in "${src_candidates[@]}"; do
    [ -d "$candidate" ] && { src=$(cd "$candidate" && pwd); break; }
  done
  src=${src:-${src_candidates[0]}}
fi
asterisk_tar=$src/asterisk-22.10.1.tar.gz
pjproject_tar=$src/pjproject-2.17.tar.bz2
# Root's home is closed to other users, and Asterisk runs as one: root caches in /var/cache.
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/pgcti; else default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/pgcti; fi
cache_root=${PGCTI_CACHE:-$default_cache}

cannot() { echo "cannot build the Asterisk lab: $*" >&2; exit 3; }

[ -r "$asterisk_tar" ] && [ -r "$pjproject_tar" ] \
  || cannot "the source tarballs are not in $src (set PGCTI_ASTERISK_SRC to their folder)"
key=$(cat "$asterisk_tar" "$pjproject_tar" | sha256sum | cut -c1-16)
prefix=$cache_root/asterisk-22.10.1-$key
if [ -x "$prefix/sbin/asterisk" ] && [ -f "$prefix/.built" ]; then
  echo "$prefix"
  exit 0
fi
[ $cached_only = yes ] && cannot "not built on this machine yet: run make test-asterisk (about 6 minutes, once)"

# The build's Debian packages; odbc-postgresql and unixodbc for dialplan lookups in
# PostgreSQL, baresip for the SIP phones the lab drives.
packages=(build-essential libjansson-dev libedit-dev libxml2-dev libsqlite3-dev uuid-dev
  libssl-dev libsrtp2-dev libcurl4-openssl-dev libncurses-dev unixodbc-dev odbc-postgresql
  baresip bzip2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing Debian packages for the Asterisk lab: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null || cannot "apt-get could not install ${missing[*]}"
  else
    cannot "missing Debian packages ${missing[*]} (install them as root)"
  fi
fi

build=$(mktemp -d "${TMPDIR:-/tmp}/pgcti-asterisk-build.XXXXXX")
trap 'rm -rf "$build"' EXIT
log=$build/build.log
step() { echo "==> Asterisk lab build: $* ($(date +%T))" >&2; }
run() { "$@" >>"$log" 2>&1 || { tail -40 "$log" >&2; cannot "step failed: $*"; }; }

step "unpacking into $build (first run on this machine only, about 6 minutes)"
tar -xzf "$asterisk_tar" -C "$build"
cd "$build/asterisk-22.10.1"

step "configure (bundled pjproject from the local tarball)"
run ./configure --prefix="$prefix" --with-pjproject-bundled --with-externals-cache="$src" \
  --with-jansson --without-x11 --without-gtk2

step "module selection"
run make menuselect.makeopts
categories=(MENUSELECT_ADDONS MENUSELECT_APPS MENUSELECT_BRIDGES MENUSELECT_CDR MENUSELECT_CEL
  MENUSELECT_CHANNELS MENUSELECT_CODECS MENUSELECT_FORMATS MENUSELECT_FUNCS MENUSELECT_PBX
  MENUSELECT_RES MENUSELECT_TESTS MENUSELECT_UTILS MENUSELECT_CORE_SOUNDS MENUSELECT_MOH
  MENUSELECT_EXTRA_SOUNDS)
# What calls, transfers, queues, recordings, originate and lookups need (see the README
# beside the tarballs); pjsip modules whose own dependencies we leave out are skipped.
modules=(chan_pjsip res_pjproject res_sorcery_config res_sorcery_memory res_sorcery_astdb
  res_rtp_asterisk res_srtp app_dial app_queue app_mixmonitor func_periodic_hook app_chanspy
  app_playback app_echo app_stack app_originate app_blind_transfer app_transfer app_verbose
  app_exec app_senddtmf app_userevent bridge_simple bridge_native_rtp bridge_holding
  bridge_builtin_features bridge_builtin_interval_features bridge_softmix res_odbc func_odbc
  func_curl res_curl res_agi res_speech res_musiconhold res_timing_timerfd cdr_manager
  cel_manager codec_ulaw codec_alaw format_wav format_pcm format_sln pbx_config
  func_callerid func_channel func_strings func_logic func_db func_cut func_global func_math
  func_devstate func_groupcount func_hangupcause res_clioriginate res_manager_devicestate
  res_manager_presencestate res_parking app_confbridge res_stasis res_format_attr_opus)
for m in res/res_pjsip*.c; do
  m=$(basename "$m" .c)
  case $m in
    res_pjsip_geolocation|res_pjsip_stir_shaken|res_pjsip_phoneprov_provider|res_pjsip_transport_websocket) ;;
    *) modules+=("$m") ;;
  esac
done
args=()
for c in "${categories[@]}"; do args+=(--disable-category "$c"); done
args+=(--disable BUILD_NATIVE)
for m in "${modules[@]}"; do args+=(--enable "$m"); done
run menuselect/menuselect "${args[@]}" menuselect.makeopts

step "make -j$(nproc)"
run make -j"$(nproc)"
step "install into $prefix"
rm -rf "$prefix"
run make install
touch "$prefix/.built"
step "done"
echo "$prefix"
