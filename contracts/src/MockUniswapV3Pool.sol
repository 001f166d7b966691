// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title MockUniswapV3Pool
/// @notice Answers Uniswap v3 `observe` from a settable tick. Like the real oracle, every
///         `setTick` closes the previous period by accumulating tick * elapsed seconds, so
///         (cum[now] - cum[now - window]) / window is the time-weighted average tick.
/// @dev secondsPerLiquidityCumulativeX128s are always 0 (no liquidity is modelled).
contract MockUniswapV3Pool {
    /// @dev The tick in force from `timestamp` on, and the tick cumulative at `timestamp`.
    struct Observation {
        uint32 timestamp;
        int56 tickCumulative;
        int24 tick;
    }

    address public immutable token0;
    address public immutable token1;
    Observation[] internal observations;

    constructor(address token0_, address token1_, int24 initialTick) {
        token0 = token0_;
        token1 = token1_;
        observations.push(Observation(uint32(block.timestamp), 0, initialTick));
    }

    /// @notice The tick in force now.
    function currentTick() external view returns (int24) {
        return observations[observations.length - 1].tick;
    }

    /// @notice Makes `newTick` the tick from this block on.
    function setTick(int24 newTick) external {
        uint32 nowTs = uint32(block.timestamp);
        observations.push(Observation(nowTs, _cumulativeAt(nowTs), newTick));
    }

    function observe(uint32[] calldata secondsAgos)
        external
        view
        returns (int56[] memory tickCumulatives, uint160[] memory secondsPerLiquidityCumulativeX128s)
    {
        tickCumulatives = new int56[](secondsAgos.length);
        secondsPerLiquidityCumulativeX128s = new uint160[](secondsAgos.length);
        for (uint256 i = 0; i < secondsAgos.length; ++i) {
            tickCumulatives[i] = _cumulativeAt(uint32(block.timestamp) - secondsAgos[i]);
        }
    }

    /// @dev Cumulative at `target`, interpolated from the latest observation not after it.
    function _cumulativeAt(uint32 target) internal view returns (int56) {
        for (uint256 i = observations.length; i > 0; --i) {
            Observation storage o = observations[i - 1];
            if (o.timestamp <= target) {
                return o.tickCumulative + int56(o.tick) * int56(uint56(target - o.timestamp));
            }
        }
        revert("OLD");
    }
}
