/* The ceiling of the compiled loops' passes on this CPU: 25 taps (5×5) over an output row of
 * 512 float32 samples whose 5 input rows sit in L1, four ways (issue 14; the numbers are
 * recorded in results/tap_ceiling.txt and quoted in trueconv._methods.rows' docstring):
 *   - unaligned zmm: one accumulator, each tap a shifted (cache-line-splitting) 64-byte load;
 *   - unaligned zmm x4: four accumulators, as LLVM vectorises the loops' group routine;
 *   - alignr zmm (x4): two aligned loads per input row, the k shifted vectors made in
 *     registers by valignd (what no compiler makes of the scalar loop numba compiles);
 *   - unaligned ymm x4: 32-byte loads, which split a line half as often.
 * Build and run (gcc 12; not part of the package or its tests):
 *   gcc -O3 -march=native -mprefer-vector-width=512 -o /tmp/tap_ceiling benchmarks/tap_ceiling.c
 *   /tmp/tap_ceiling
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define W 512
#define K 5
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
float *rows[K]; float wt[K][K]; float *out;
__attribute__((noinline)) void pass_unaligned(void){
  for(int j=0;j<W;j+=16){
    __m512 acc=_mm512_setzero_ps();
    for(int r=0;r<K;r++){
      const float*p=rows[r]+j;
      #pragma GCC unroll 8
      for(int s=0;s<K;s++) acc=_mm512_add_ps(acc,_mm512_mul_ps(_mm512_set1_ps(wt[r][s]),_mm512_loadu_ps(p+s)));
    }
    _mm512_store_ps(out+j,acc);
  }
}
/* 4 accumulators interleaved as LLVM does */
__attribute__((noinline)) void pass_unaligned4(void){
  for(int j=0;j<W;j+=64){
    __m512 a0=_mm512_setzero_ps(),a1=a0,a2=a0,a3=a0;
    for(int r=0;r<K;r++){
      const float*p=rows[r]+j;
      #pragma GCC unroll 8
      for(int s=0;s<K;s++){ __m512 w=_mm512_set1_ps(wt[r][s]);
        a0=_mm512_add_ps(a0,_mm512_mul_ps(w,_mm512_loadu_ps(p+s)));
        a1=_mm512_add_ps(a1,_mm512_mul_ps(w,_mm512_loadu_ps(p+s+16)));
        a2=_mm512_add_ps(a2,_mm512_mul_ps(w,_mm512_loadu_ps(p+s+32)));
        a3=_mm512_add_ps(a3,_mm512_mul_ps(w,_mm512_loadu_ps(p+s+48)));}
    }
    _mm512_store_ps(out+j,a0);_mm512_store_ps(out+j+16,a1);_mm512_store_ps(out+j+32,a2);_mm512_store_ps(out+j+48,a3);
  }
}
#define AL(s) _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(B),_mm512_castps_si512(A),s))
__attribute__((noinline)) void pass_align(void){
  for(int j=0;j<W;j+=16){
    __m512 acc=_mm512_setzero_ps();
    for(int r=0;r<K;r++){
      const float*p=rows[r]+j;
      __m512 A=_mm512_load_ps(p), B=_mm512_load_ps(p+16);
      acc=_mm512_add_ps(acc,_mm512_mul_ps(_mm512_set1_ps(wt[r][0]),A));
      acc=_mm512_add_ps(acc,_mm512_mul_ps(_mm512_set1_ps(wt[r][1]),AL(1)));
      acc=_mm512_add_ps(acc,_mm512_mul_ps(_mm512_set1_ps(wt[r][2]),AL(2)));
      acc=_mm512_add_ps(acc,_mm512_mul_ps(_mm512_set1_ps(wt[r][3]),AL(3)));
      acc=_mm512_add_ps(acc,_mm512_mul_ps(_mm512_set1_ps(wt[r][4]),AL(4)));
    }
    _mm512_store_ps(out+j,acc);
  }
}
__attribute__((noinline)) void pass_align4(void){
  for(int j=0;j<W;j+=64){
    __m512 a[4]; for(int q=0;q<4;q++) a[q]=_mm512_setzero_ps();
    for(int r=0;r<K;r++){
      const float*p=rows[r]+j;
      __m512 w0=_mm512_set1_ps(wt[r][0]),w1=_mm512_set1_ps(wt[r][1]),w2=_mm512_set1_ps(wt[r][2]),w3=_mm512_set1_ps(wt[r][3]),w4=_mm512_set1_ps(wt[r][4]);
      __m512 A=_mm512_load_ps(p);
      #pragma GCC unroll 4
      for(int q=0;q<4;q++){
        __m512 B=_mm512_load_ps(p+16*(q+1));
        __m512 acc=a[q];
        acc=_mm512_add_ps(acc,_mm512_mul_ps(w0,A));
        acc=_mm512_add_ps(acc,_mm512_mul_ps(w1,AL(1)));
        acc=_mm512_add_ps(acc,_mm512_mul_ps(w2,AL(2)));
        acc=_mm512_add_ps(acc,_mm512_mul_ps(w3,AL(3)));
        acc=_mm512_add_ps(acc,_mm512_mul_ps(w4,AL(4)));
        a[q]=acc; A=B;
      }
    }
    for(int q=0;q<4;q++) _mm512_store_ps(out+j+16*q,a[q]);
  }
}
__attribute__((noinline)) void pass_ymm4(void){
  for(int j=0;j<W;j+=32){
    __m256 a0=_mm256_setzero_ps(),a1=a0,a2=a0,a3=a0;
    for(int r=0;r<K;r++){
      const float*p=rows[r]+j;
      #pragma GCC unroll 8
      for(int s=0;s<K;s++){ __m256 w=_mm256_set1_ps(wt[r][s]);
        a0=_mm256_add_ps(a0,_mm256_mul_ps(w,_mm256_loadu_ps(p+s)));
        a1=_mm256_add_ps(a1,_mm256_mul_ps(w,_mm256_loadu_ps(p+s+8)));
        a2=_mm256_add_ps(a2,_mm256_mul_ps(w,_mm256_loadu_ps(p+s+16)));
        a3=_mm256_add_ps(a3,_mm256_mul_ps(w,_mm256_loadu_ps(p+s+24)));}
    }
    _mm256_store_ps(out+j,a0);_mm256_store_ps(out+j+8,a1);_mm256_store_ps(out+j+16,a2);_mm256_store_ps(out+j+24,a3);
  }
}
int main(){
  for(int r=0;r<K;r++){rows[r]=aligned_alloc(64,(W+64)*4);for(int i=0;i<W+64;i++)rows[r][i]=rand()/(float)RAND_MAX; for(int s=0;s<K;s++)wt[r][s]=rand()/(float)RAND_MAX;}
  out=aligned_alloc(64,W*4);
  void (*fs[])(void)={pass_unaligned,pass_unaligned4,pass_align,pass_align4,pass_ymm4};
  const char*names[]={"unaligned zmm","unaligned zmm x4","alignr zmm","alignr zmm x4","unaligned ymm x4"};
  int N=200000;
  for(int f=0;f<5;f++){ double best=1e9; for(int t=0;t<5;t++){double s=now(); for(int i=0;i<N;i++){fs[f]();__asm__ volatile(""::"r"(out):"memory");} double e=now()-s; if(e<best)best=e;}
    double taps=(double)N*(W/16)*K*K; printf("%-20s %.3f ns per 16-lane tap (%.2f cycles @3.67)\n",names[f],best/taps*1e9,best/taps*1e9*3.67);}
  return 0;
}
