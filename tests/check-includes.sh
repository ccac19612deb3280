#!/usr/bin/env bash
# tests/check-includes.sh — the layer rule of core/ (core/README.md), checked
# over the #include "..." lines of the tree:
#   base   may include base
#   nn     may include nn, base
#   engine may include engine, base
#   kit    may include kit, nn, engine, base
#   cli    may include anything in core/
# plus: no circle of includes among core's headers, and a plugin under
# plugins/ includes only its own folder's headers and the installed API (the
# headers the .am fragments list in lmpipeinclude_HEADERS), so a third party
# can build what the shipped plugins do.
# Usage: tests/check-includes.sh [TOP]   (TOP: the source tree, default .)
# Prints one line per violation, "FILE:LINE: ..."; exit 1 if any.
set -u
top=${1:-.}
cd "$top" || exit 2
layers="base nn engine kit cli"
declare -A layer_of allowed installed
allowed[base]="base"
allowed[nn]="nn base"
allowed[engine]="engine base"
allowed[kit]="kit nn engine base"
allowed[cli]="cli kit nn engine base"
for l in $layers; do
    [ -d "core/$l" ] || { echo "check-includes: core/$l is missing" >&2; exit 2; }
    for f in core/$l/*.h core/$l/*.c; do
        [ -e "$f" ] || continue
        b=${f##*/}
        if [ -n "${layer_of[$b]:-}" ]; then
            echo "$f: the name $b is also in core/${layer_of[$b]} (bare-name includes need one file per name)"
            bad=1
        fi
        layer_of[$b]=$l
    done
done
# (continuation lines joined first)
for h in $(sed -e ':a' -e '/\\$/{N;s/\\\n//;ba' -e '}' core/*.am core/*/*.am |
    sed -n 's/^lmpipeinclude_HEADERS *+*= *//p' | tr ' \t' '\n\n' | grep '\.h$'); do
    installed[${h##*/}]=1
done
bad=${bad:-0}
generated="config.h schema_sql.c"

# Quoted includes of a file: "LINE NAME" pairs.
includes() { grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$1" | sed 's/^\([0-9]*\):.*"\(.*\)".*/\1 \2/'; }

for l in $layers; do
    for f in core/$l/*.h core/$l/*.c; do
        [ -e "$f" ] || continue
        while read -r line name; do
            case " $generated " in *" $name "*) continue ;; esac
            to=${layer_of[${name##*/}]:-}
            if [ -z "$to" ]; then
                echo "$f:$line: includes \"$name\", which is in no layer of core/"
                bad=1
            elif [ "$name" != "${name##*/}" ]; then
                echo "$f:$line: includes \"$name\" by a path: include core headers by bare name"
                bad=1
            elif ! case " ${allowed[$l]} " in *" $to "*) true ;; *) false ;; esac; then
                echo "$f:$line: $l includes \"$name\" from $to: $l may include only ${allowed[$l]}"
                bad=1
            fi
        done < <(includes "$f")
    done
done

# Circles among headers: a depth-first walk over "header includes header".
declare -A state # 1: on the current path, 2: done
cycle_walk() {
    local h=$1 path=$2 dep
    state[$h]=1
    for dep in $(includes "core/${layer_of[$h]}/$h" | awk '{print $2}'); do
        [ -n "${layer_of[$dep]:-}" ] && [ "${dep%.h}" != "$dep" ] || continue
        if [ "${state[$dep]:-0}" = 1 ]; then
            echo "core/${layer_of[$h]}/$h: include circle: $path -> $dep"
            bad=1
        elif [ "${state[$dep]:-0}" = 0 ]; then
            cycle_walk "$dep" "$path -> $dep"
        fi
    done
    state[$h]=2
}
for h in "${!layer_of[@]}"; do
    [ "${h%.h}" != "$h" ] && [ "${state[$h]:-0}" = 0 ] && cycle_walk "$h" "$h"
done

# Plugins: their own folder, or the installed API.
for f in plugins/*/*.c plugins/*/*.h; do
    [ -e "$f" ] || continue
    dir=${f%/*}
    while read -r line name; do
        case " $generated " in *" $name "*) continue ;; esac
        [ -e "$dir/$name" ] && continue
        if [ -z "${installed[$name]:-}" ]; then
            echo "$f:$line: includes \"$name\", which make install does not install (lmpipeinclude_HEADERS)"
            bad=1
        fi
    done < <(includes "$f")
done
exit "$bad"
