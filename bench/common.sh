# Shared helpers for the benchmark scripts (sourced).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
PY=/usr/bin/python3
launch/setup-deps --bench
[ -x build/ladon ] || launch/build
[ -f data/fmnist/category.h5 ] || build/ladon data fmnist data/fmnist
mkdir -p bench/out

# json_field FILE_OR_LINE KEY -> the numeric value of "KEY": in the text
json_field() { sed -n "s/.*\"$2\": *\([-0-9.e+]*\).*/\1/p" <<<"$1" | tail -n 1; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
