// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title SequencerUptimeFeed
/// @notice Chainlink L2 sequencer-uptime feed shape: answer 0 = up, 1 = down; startedAt is when
///         the status last changed. The real feed updates only on a status change, so its
///         updatedAt says nothing about staleness.
contract SequencerUptimeFeed {
    struct Round {
        int256 answer;
        uint256 startedAt;
        uint256 updatedAt;
    }

    uint8 public constant decimals = 0;
    uint256 public constant version = 1;
    string public constant description = "L2 Sequencer Uptime Status Feed";

    uint80 internal latestRoundId;
    mapping(uint80 => Round) internal rounds;

    /// @notice Starts "up" since the deployment block.
    constructor() {
        _pushRound(false, block.timestamp);
    }

    /// @notice Records a status change happening now.
    function setStatus(bool down) external {
        _pushRound(down, block.timestamp);
    }

    /// @notice Records a status change that happened at `startedAt` (e.g. a long time ago).
    function setStatusAt(bool down, uint256 startedAt) external {
        _pushRound(down, startedAt);
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return getRoundData(latestRoundId);
    }

    function getRoundData(uint80 roundId_)
        public
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        require(roundId_ != 0 && roundId_ <= latestRoundId, "No data present");
        Round storage r = rounds[roundId_];
        return (roundId_, r.answer, r.startedAt, r.updatedAt, roundId_);
    }

    function latestAnswer() external view returns (int256) {
        return rounds[latestRoundId].answer;
    }

    function _pushRound(bool down, uint256 startedAt) internal {
        latestRoundId += 1;
        rounds[latestRoundId] = Round(down ? int256(1) : int256(0), startedAt, block.timestamp);
    }
}
