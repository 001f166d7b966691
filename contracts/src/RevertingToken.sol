// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title RevertingToken
/// @notice A token whose `balanceOf` always reverts: exercises failed reads in batches.
contract RevertingToken {
    function decimals() external pure returns (uint8) {
        return 18;
    }

    function balanceOf(address) external pure returns (uint256) {
        revert("RevertingToken: balanceOf disabled");
    }
}
