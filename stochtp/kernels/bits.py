"""Bit-level operations inside Numba kernels: float32 values as their IEEE-754 bit patterns and
back, and the set bits of a 64-bit word.

Building 2^n from its exponent bits, or reading a float's exponent, takes one integer
operation this way; with only float arithmetic it took a chain of compare-and-multiply steps.
The casts are free (LLVM `bitcast`) and keep the element-wise loops vectorised. Counting a
word's set bits, or finding its lowest one, is one instruction each, where a table of 256 entries
took a load per byte.
"""
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def float32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the low 32 bits of the integer `bits` (Numba widens
    integer arithmetic to 64 bits, so the argument may be wider)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = builder.trunc(args[0], ir.IntType(32)) if bits.bitwidth > 32 else args[0]
        return builder.bitcast(low, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def bits_from_float32(typingctx, value):
    """The bit pattern of the float32 `value`, as an int32."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def set_bits(typingctx, word):
    """The number of bits set in the uint64 `word` (LLVM ctpop: one instruction on x86-64 CPUs with
    POPCNT, as every AVX2 one has)."""
    if word != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@intrinsic
def lowest_bit(typingctx, word):
    """The index of the lowest set bit of the uint64 `word`, 64 for 0 (LLVM cttz: one instruction
    with BMI1, as every AVX2 x86-64 CPU has)."""
    if word != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return types.uint64(types.uint64), codegen
