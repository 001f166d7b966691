// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Multicall3
/// @notice The subset of canonical Multicall3 (0xcA11bde05977b3631167028862bE2a173976CA11) that
///         crossmargin uses, with the same ABI. Stateless, so its runtime code can be injected
///         at the canonical address with an eth_call state override or anvil_setCode.
/// @dev A call to an address without code succeeds with empty returnData (EVM semantics);
///      callers must treat any return that is not the expected size as a failed read.
contract Multicall3 {
    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    /// @notice Runs every call; reverts only if a call fails and its allowFailure is false.
    function aggregate3(Call3[] calldata calls) external payable returns (Result[] memory results) {
        results = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            Call3 calldata c = calls[i];
            (bool success, bytes memory returnData) = c.target.call(c.callData);
            if (!success && !c.allowFailure) {
                revert("Multicall3: call failed");
            }
            results[i] = Result(success, returnData);
        }
    }

    function getBlockNumber() external view returns (uint256 blockNumber) {
        blockNumber = block.number;
    }

    function getBlockHash(uint256 blockNumber) external view returns (bytes32 blockHash) {
        blockHash = blockhash(blockNumber);
    }

    function getCurrentBlockTimestamp() external view returns (uint256 timestamp) {
        timestamp = block.timestamp;
    }

    function getEthBalance(address addr) external view returns (uint256 balance) {
        balance = addr.balance;
    }
}
