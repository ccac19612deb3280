# bench/lib.sh — shell functions the benchmark scripts share (sourced).

# The OpenBLAS kernels this CPU's vector width allows, as an
# OPENBLAS_CORETYPE value (SkylakeX, Haswell), or nothing: what lmpipe's
# core/base/blasenv.c selects for itself, for running a peer on the same kernels.
best_coretype() {
    case " $(grep -m1 '^flags' /proc/cpuinfo || true) " in
        *" avx512f "*) echo SkylakeX ;;
        *" avx2 "*) echo Haswell ;;
    esac
}
