"""Reinterpreting float32 values as their IEEE-754 bit patterns and back, inside Numba kernels.

Building 2^n from its exponent bits, or reading a float's exponent, takes one integer
operation this way; with only float arithmetic it took a chain of compare-and-multiply steps.
The casts are free (LLVM `bitcast`) and keep the element-wise loops vectorised.
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
